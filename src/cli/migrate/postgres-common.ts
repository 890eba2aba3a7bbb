// What both PostgreSQL ends of a migration share: one connection each
// (node-postgres), errors in connectionProblem's words naming --from or --to,
// and the counts and checksums of the verification computed in SQL.
import pg from "pg";
import { connectionProblem, isConnectionError, isTransient } from "../../storage/postgres/connection.js";
import { CliError } from "../args.js";
import { ARCHIVE_COLUMNS, IS_STATE, PROSODY_COLUMNS, type Summary, Transient } from "./model.js";

// int8 (sort_id, counts) as numbers: positions stay far below 2^53
const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

export type Option = "--from" | "--to";

export function problem(err: unknown, url: string, option: Option): CliError {
  if (err instanceof CliError) return err;
  const message = connectionProblem(err, { url, pool: 1, setting: option }).message;
  return isConnectionError(err) || isTransient(err) ? new Transient(message) : new CliError(message);
}

export async function connect(url: string, option: Option): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, types, application_name: "mamkit migrate", connectionTimeoutMillis: 10_000 });
  c.on("error", () => {}); // a connection lost between queries: the next query says so
  try {
    await c.connect();
  } catch (err) {
    await c.end().catch(() => undefined);
    throw problem(err, url, option);
  }
  return c;
}

/** The SQL of a row's digest (model.ts rowDigest): length in bytes, ":", field; SHA-256; its first 8 bytes. */
function digestSql(cols: readonly string[]): string {
  const field = (col: string) =>
    col === "sort_id" || col === "when"
      ? `length("${col}"::text)::text || ':' || "${col}"::text`
      : `octet_length(convert_to("${col}", 'UTF8'))::text || ':' || "${col}"`;
  return `('x' || encode(substr(sha256(convert_to(${cols.map(field).join(" || ")}, 'UTF8')), 1, 8), 'hex'))::bit(64)::bigint`;
}
const PROSODY_SUM = `SELECT count(*) AS n, COALESCE(sum(${digestSql(PROSODY_COLUMNS)}), 0)::text AS s FROM "prosody" WHERE NOT (${IS_STATE})`;
const ARCHIVE_SUM = `SELECT count(*) AS n, COALESCE(sum(${digestSql(ARCHIVE_COLUMNS)}), 0)::text AS s, max("sort_id") AS m FROM "prosodyarchive"`;

export async function sequenceName(c: pg.Client): Promise<string | undefined> {
  const r = await c.query("SELECT pg_get_serial_sequence('\"prosodyarchive\"', 'sort_id') AS s");
  return typeof r.rows[0]?.s === "string" ? r.rows[0].s : undefined;
}

export async function summaryOf(c: pg.Client, seq: string | undefined): Promise<Summary> {
  const p = (await c.query(PROSODY_SUM)).rows[0]!;
  const a = (await c.query(ARCHIVE_SUM)).rows[0]!;
  let sequence = 0;
  if (seq !== undefined) {
    const s = (await c.query(`SELECT last_value AS v, is_called AS c FROM ${seq}`)).rows[0]!;
    sequence = s.c ? (s.v as number) : (s.v as number) - 1;
  }
  return {
    prosody: { rows: p.n as number, checksum: BigInt.asUintN(64, BigInt(p.s as string)) },
    archive: { rows: a.n as number, checksum: BigInt.asUintN(64, BigInt(a.s as string)), maxSortId: (a.m as number | null) ?? null },
    sequence,
  };
}
