// Connections to PostgreSQL (node-postgres): a pool for reads and
// transactions, one connection for the group commit's batches, and what a
// failure means — the server gone (retry once it is back), or a refusal the
// operator must fix (said in our words, naming the setting).
import pg from "pg";
import { StorageError } from "../types.js";

/** What runs a query: a pool, or one connection checked out of it. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
}

export interface PgTarget {
  /** postgres://user:password@host:port/database (or a socket folder as host=). */
  url: string;
  /** Connections for reads and transactions (the writer has one more of its own). */
  pool: number;
  /** The config setting the connection came from, for error messages. */
  setting: string;
}

// int8 (sort_id, counts) as numbers: positions stay far below 2^53
const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

/**
 * `name` shows in pg_stat_activity (a node's connections carry its id: other
 * nodes count it alive while any is there); `keepIdle` keeps idle connections
 * open rather than closing them after 10 s.
 */
export function newPool(t: PgTarget, max: number, name: string, keepIdle = false): pg.Pool {
  const pool = new pg.Pool({
    connectionString: t.url,
    max,
    types,
    application_name: name,
    connectionTimeoutMillis: 10_000,
    ...(keepIdle && { idleTimeoutMillis: 0 }),
    keepAlive: true,
  });
  // a connection the server dropped while idle: the pool discards it and opens another when needed
  pool.on("error", () => {});
  return pool;
}

const guarded = new WeakSet<pg.PoolClient>();

/**
 * A connection from the pool. A connection the server drops while it is
 * checked out reports an 'error' event; with nobody listening, Node would end
 * the process. The query that was running fails with it, which is what counts.
 */
export async function checkout(pool: pg.Pool): Promise<pg.PoolClient> {
  const c = await pool.connect();
  if (!guarded.has(c)) {
    guarded.add(c);
    c.on("error", () => {});
  }
  return c;
}

/** Where the URL points, without its password, for messages. */
export function describeTarget(url: string): { where: string; user: string; database: string } {
  try {
    const u = new URL(url);
    const socket = u.searchParams.get("host");
    return {
      where: socket ?? `${u.hostname || "localhost"}:${u.port || "5432"}`,
      user: decodeURIComponent(u.username) || process.env.PGUSER || "(the system user)",
      database: decodeURIComponent(u.pathname.slice(1)) || decodeURIComponent(u.username),
    };
  } catch {
    return { where: "(an unreadable URL)", user: "", database: "" };
  }
}

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOENT", // a Unix socket not there (yet)
  "57P01", // admin_shutdown: the server is stopping
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: starting up or recovering
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
]);

/** Whether the error says the server is (for now) out of reach, rather than that a statement failed. */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  if (e?.code !== undefined && CONNECTION_CODES.has(e.code)) return true;
  const m = e?.message ?? "";
  return /Connection terminated|connection error|timeout exceeded when trying to connect|Client was closed|not queryable/i.test(m);
}

/** Whether retrying the same statements may succeed (a deadlock broken, a serialisation conflict). */
export function isTransient(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return code === "40P01" || code === "40001" || code === "55P03";
}

/** A StorageError that says what is wrong with the connection, naming the setting. */
export function connectionProblem(err: unknown, t: PgTarget): StorageError {
  const { where, user, database } = describeTarget(t.url);
  const e = err as { code?: string; message?: string };
  const m = e.message ?? String(err);
  let text: string;
  if (e.code === "28P01" || e.code === "28000" || /password must be a string|password authentication/i.test(m)) {
    text = `PostgreSQL at ${where} refused user "${user}" (${t.setting}): ${/must be a string/.test(m) ? "it asks for a password and none is given" : m}`;
  } else if (e.code === "3D000") {
    text = `PostgreSQL at ${where} has no database "${database}" (${t.setting}): create it first (createdb ${database})`;
  } else if (e.code === "ECONNREFUSED" || e.code === "ENOENT") {
    text = `cannot connect to PostgreSQL at ${where} (${t.setting}): nothing accepts connections there; is the server running?`;
  } else if (e.code === "ENOTFOUND" || e.code === "EAI_AGAIN") {
    text = `cannot connect to PostgreSQL at ${where} (${t.setting}): the host name is unknown`;
  } else if (isConnectionError(err)) {
    text = `lost the connection to PostgreSQL at ${where} (${t.setting}): ${m}`;
  } else {
    text = `PostgreSQL at ${where} (${t.setting}): ${m}`;
  }
  return new StorageError("backend", text, { cause: err });
}

/** Whether the error is a refusal retrying cannot cure (credentials, a missing database). */
export function isRefusal(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e.code === "28P01" || e.code === "28000" || e.code === "3D000" || /password must be a string/.test(e.message ?? "");
}
