// The PostgreSQL ends of a migration, each one connection (node-postgres).
// The source session is read-only (default_transaction_read_only) and reads
// in one REPEATABLE READ snapshot for the whole run; it never creates a table.
// The destination takes an advisory lock for the run (one migration at a
// time), gets Prosody's schema from the driver's ensureSchema, and writes
// each step in one transaction with unnest() inserts.
import type pg from "pg";
import { describeTarget } from "../../storage/postgres/connection.js";
import { ensureSchema, LOCK_SCHEMA, PROSODY_PG_SCHEMA } from "../../storage/postgres/schema.js";
import { CliError } from "../args.js";
import {
  ARCHIVE_COLUMNS,
  type ArchiveRow,
  columnList,
  type Destination,
  type Inspection,
  IS_STATE,
  PROSODY_COLUMNS,
  type ProsodyRow,
  STATE,
  type Source,
  type Summary,
} from "./model.js";
import { connect, problem, sequenceName, summaryOf } from "./postgres-common.js";

/** The advisory lock a migration holds on its destination ("mamn": next to the driver's). */
const LOCK_MIGRATE = 0x6d616d6e;
/** What the destination gets before the copy: the rest of the schema comes after it. */
const FIRST = new Set(["prosody", "prosody_index", "prosodyarchive"]);
const PROSODY = columnList(PROSODY_COLUMNS);
const ARCHIVE = columnList(ARCHIVE_COLUMNS);

export class PgSource implements Source {
  private constructor(
    readonly spec: string,
    private readonly url: string,
    private readonly c: pg.Client,
    private readonly seq: string | undefined,
  ) {}

  static async open(spec: string, url: string): Promise<PgSource> {
    const c = await connect(url, "--from");
    try {
      await c.query("SET default_transaction_read_only = on");
      await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      const r = await c.query("SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r','p') AND relname = ANY($1)", [
        ["prosody", "prosodyarchive"],
      ]);
      const have = new Set(r.rows.map((x) => x.relname as string));
      const missing = ["prosody", "prosodyarchive"].filter((t) => !have.has(t));
      if (missing.length > 0) {
        const { where, database } = describeTarget(url);
        throw new CliError(`PostgreSQL at ${where} (--from): database "${database}" has no Prosody tables (missing: ${missing.join(", ")})`);
      }
      return new PgSource(spec, url, c, await sequenceName(c));
    } catch (err) {
      await c.end().catch(() => undefined);
      throw problem(err, url, "--from");
    }
  }

  private async q(text: string, values?: unknown[], rowMode?: "array"): Promise<pg.QueryResult> {
    try {
      return await this.c.query({ text, ...(values && { values }), ...(rowMode && { rowMode }) });
    } catch (err) {
      throw problem(err, this.url, "--from");
    }
  }

  /** Whether the destination connection `pid` holding the migration lock is in this very database. */
  async holdsMigrationLock(pid: number): Promise<boolean> {
    const r = await this.q(
      "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid AND objid = 0 AND objsubid = 2 AND pid = $2 " +
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
      [LOCK_MIGRATE, pid],
    );
    return r.rows.length > 0;
  }

  async archiveRows(): Promise<number> {
    return (await this.q('SELECT count(*) AS n FROM "prosodyarchive"')).rows[0]!.n as number;
  }

  async prosodyRows(): Promise<number> {
    return (await this.q('SELECT count(*) AS n FROM "prosody"')).rows[0]!.n as number;
  }

  async state(): Promise<string | undefined> {
    return (await this.q(`SELECT "value" FROM "prosody" WHERE ${IS_STATE} LIMIT 1`)).rows[0]?.value as string | undefined;
  }

  async *prosody(batch: number): AsyncIterable<ProsodyRow[]> {
    await this.q(`DECLARE mamkit_rows NO SCROLL CURSOR FOR SELECT ${PROSODY} FROM "prosody"`);
    try {
      for (;;) {
        const r = await this.q(`FETCH FORWARD ${batch} FROM mamkit_rows`, undefined, "array");
        if (r.rows.length === 0) return;
        yield r.rows as unknown as ProsodyRow[];
      }
    } finally {
      await this.q("CLOSE mamkit_rows").catch(() => undefined);
    }
  }

  async archiveAfter(after: number | null, limit: number): Promise<ArchiveRow[]> {
    const r = await this.q(
      `SELECT ${ARCHIVE} FROM "prosodyarchive" WHERE "sort_id" > $1 ORDER BY "sort_id" LIMIT $2`,
      [after ?? Number.MIN_SAFE_INTEGER, limit],
      "array",
    );
    return r.rows as unknown as ArchiveRow[];
  }

  async summary(): Promise<Summary> {
    try {
      return await summaryOf(this.c, this.seq);
    } catch (err) {
      throw problem(err, this.url, "--from");
    }
  }

  async close(): Promise<void> {
    await this.c.query("ROLLBACK").catch(() => undefined);
    await this.c.end().catch(() => undefined);
  }
}

export class PgDestination implements Destination {
  private seq: string | undefined;

  private constructor(
    readonly spec: string,
    private readonly url: string,
    private readonly c: pg.Client,
    /** The backend pid of this connection (it holds the migration lock). */
    readonly pid: number,
  ) {}

  /** Connects and takes the migration lock; prepare() then creates the schema. */
  static async connect(spec: string, url: string): Promise<PgDestination> {
    const c = await connect(url, "--to");
    try {
      const r = await c.query("SELECT pg_try_advisory_lock($1, 0) AS ok, pg_backend_pid() AS pid", [LOCK_MIGRATE]);
      if (r.rows[0]!.ok !== true) throw new CliError("--to: another mamkit migrate is writing to this database; wait for it to end");
      return new PgDestination(spec, url, c, r.rows[0]!.pid as number);
    } catch (err) {
      await c.end().catch(() => undefined);
      throw problem(err, url, "--to");
    }
  }

  private async q(text: string, values?: unknown[]): Promise<pg.QueryResult> {
    try {
      return await this.c.query(text, values);
    } catch (err) {
      throw problem(err, this.url, "--to");
    }
  }

  /** Refuses while mamkit servers are connected; creates the tables if missing. */
  async prepare(): Promise<void> {
    const r = await this.q(
      "SELECT string_agg(DISTINCT application_name, ', ') AS names, count(*) AS n FROM pg_stat_activity " +
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND (application_name IN ('mamkit', 'mamkit writer') OR application_name LIKE 'mamkit-node:%')",
    );
    if ((r.rows[0]!.n as number) > 0) {
      throw new CliError(`--to: ${r.rows[0]!.n} connection(s) of mamkit servers use this database (${r.rows[0]!.names}): stop them first`);
    }
    try {
      // the tables (and prosody's index, which finds the state row) now; the archive's
      // other indexes at the end, by ensureSchema: built once, faster than row by row
      await this.c.query("BEGIN");
      await this.c.query("SELECT pg_advisory_xact_lock($1, 0)", [LOCK_SCHEMA]);
      for (const sql of PROSODY_PG_SCHEMA.filter((q) => FIRST.has(/"([a-z_]+)"/.exec(q)![1]!))) await this.c.query(sql);
      await this.c.query("COMMIT");
      this.seq = await sequenceName(this.c);
    } catch (err) {
      await this.c.query("ROLLBACK").catch(() => undefined);
      throw problem(err, this.url, "--to");
    }
    // a chunk's commit need not wait for the disk: a crash loses the last chunks together
    // with their state, which is consistent either way; finish() commits synchronously
    await this.q("SET synchronous_commit = off");
  }

  private async transaction<T>(fn: () => Promise<T>): Promise<T> {
    await this.q("BEGIN");
    try {
      const v = await fn();
      await this.q("COMMIT");
      return v;
    } catch (err) {
      await this.c.query("ROLLBACK").catch(() => undefined);
      throw err;
    }
  }

  async inspect(): Promise<Inspection> {
    const states = (await this.q(`SELECT "value" FROM "prosody" WHERE ${IS_STATE}`)).rows.map((r) => r.value as string);
    if (states.length > 1) throw new CliError(`--to: the database holds ${states.length} migration state rows: it is no destination mamkit can continue`);
    const r = (
      await this.q(`SELECT (SELECT count(*) FROM "prosody" WHERE NOT (${IS_STATE})) AS p, (SELECT count(*) FROM "prosodyarchive") AS a, (SELECT max("sort_id") FROM "prosodyarchive") AS m`)
    ).rows[0]!;
    return { prosodyRows: r.p as number, archiveRows: r.a as number, maxSortId: (r.m as number | null) ?? null, state: states[0] };
  }

  private async insertProsody(rows: ProsodyRow[]): Promise<void> {
    const col = (i: number) => rows.map((r) => r[i]);
    await this.q(`INSERT INTO "prosody" (${PROSODY}) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])`, [
      col(0),
      col(1),
      col(2),
      col(3),
      col(4),
      col(5),
    ]);
  }

  start(rows: AsyncIterable<ProsodyRow[]>, state: (rows: number) => string, copied: (rows: number) => void): Promise<number> {
    return this.transaction(async () => {
      const held = (await this.q('SELECT (SELECT count(*) FROM "prosody") + (SELECT count(*) FROM "prosodyarchive") AS n')).rows[0]!.n as number;
      if (held > 0) throw new CliError("--to: the database received data while the migration began");
      let n = 0;
      for await (const batch of rows) {
        await this.insertProsody(batch);
        n += batch.length;
        copied(n);
      }
      await this.insertProsody([[STATE.host, STATE.user, STATE.store, STATE.key, STATE.type, state(n)]]);
      return n;
    });
  }

  chunk(rows: ArchiveRow[], from: string, to: string): Promise<void> {
    return this.transaction(async () => {
      const moved = await this.q(`UPDATE "prosody" SET "value" = $1 WHERE ${IS_STATE} AND "value" = $2`, [to, from]);
      if (moved.rowCount !== 1) throw new CliError("--to: the migration state in the database changed under this run (another mamkit migrate?)");
      const col = (i: number) => rows.map((r) => r[i]);
      await this.q(
        `INSERT INTO "prosodyarchive" (${ARCHIVE}) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[])`,
        [col(0), col(1), col(2), col(3), col(4), col(5), col(6), col(7), col(8)],
      );
    });
  }

  async complete(): Promise<void> {
    try {
      await ensureSchema(this.c, true);
    } catch (err) {
      throw problem(err, this.url, "--to");
    }
  }

  async setSequence(highest: number): Promise<void> {
    if (this.seq === undefined) throw new CliError('--to: prosodyarchive.sort_id has no sequence (not a BIGSERIAL column): positions cannot be kept unique');
    await this.q("SELECT setval($1::regclass, $2, $3)", highest > 0 ? [this.seq, highest, true] : [this.seq, 1, false]);
  }

  async summary(): Promise<Summary> {
    try {
      return await summaryOf(this.c, this.seq);
    } catch (err) {
      throw problem(err, this.url, "--to");
    }
  }

  async finish(state: string): Promise<void> {
    await this.q("SET synchronous_commit = on"); // durable: every chunk before it with it
    const r = await this.q(`DELETE FROM "prosody" WHERE ${IS_STATE} AND "value" = $1`, [state]);
    if (r.rowCount !== 1) throw new CliError("--to: the migration state in the database changed under this run (another mamkit migrate?)");
  }

  async close(): Promise<void> {
    await this.c.end().catch(() => undefined);
  }
}
