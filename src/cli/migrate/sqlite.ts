// The SQLite ends of a migration. The source is opened read-only (the file
// must exist) and, in WAL mode, read in one snapshot for the whole run; the
// destination gets Prosody's tables first and the archive's other indexes at
// the end (from the SQLite driver, which creates what is missing), and is
// written in BEGIN IMMEDIATE transactions with prepared inserts.
import { existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { PROSODY_SCHEMA, SqliteDriver } from "../../storage/sqlite/driver.js";
import { CliError } from "../args.js";
import { serverUsing } from "../lock.js";
import { ARCHIVE_COLUMNS, type ArchiveRow, columnList, type Destination, type Inspection, IS_STATE, PROSODY_COLUMNS, type ProsodyRow, STATE, type Source, type Summary, Transient } from "./model.js";
import { archiveRow, count, prosodyRow, summaryOf } from "./sqlite-rows.js";

const PROSODY = columnList(PROSODY_COLUMNS);
const ARCHIVE = columnList(ARCHIVE_COLUMNS);
const NOT_STATE = `NOT (${IS_STATE})`;

export class SqliteSource implements Source {
  private readonly db: Database.Database;

  constructor(
    readonly spec: string,
    private readonly file: string,
  ) {
    if (!existsSync(file)) throw new CliError(`--from: there is no SQLite database ${file} (no such file)`);
    let db: Database.Database | undefined;
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
      db.pragma("busy_timeout = 5000");
      const tables = new Set(db.prepare("SELECT name FROM sqlite_master WHERE type='table'").pluck().all() as string[]);
      const missing = ["prosody", "prosodyarchive"].filter((t) => !tables.has(t));
      if (missing.length > 0) throw new CliError(`--from: ${file} has no Prosody tables (missing: ${missing.join(", ")})`);
      // WAL: one read transaction for the whole run, so that every chunk and the
      // verification see the same snapshot (beside a writer, which it does not block)
      if (db.pragma("journal_mode", { simple: true }) === "wal") {
        db.exec("BEGIN");
        db.prepare('SELECT count(*) FROM "prosodyarchive" LIMIT 1').get();
      }
      this.db = db;
    } catch (err) {
      db?.close();
      if (err instanceof CliError) throw err;
      throw new CliError(`--from: cannot read the SQLite database ${file}: ${(err as Error).message}`);
    }
  }

  private read<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`--from: reading ${this.file} failed: ${(err as Error).message}`);
    }
  }

  async archiveRows(): Promise<number> {
    return this.read(() => count(this.db, 'SELECT count(*) FROM "prosodyarchive"'));
  }

  async prosodyRows(): Promise<number> {
    return this.read(() => count(this.db, 'SELECT count(*) FROM "prosody"'));
  }

  async state(): Promise<string | undefined> {
    return this.read(() => this.db.prepare(`SELECT "value" FROM "prosody" WHERE ${IS_STATE} LIMIT 1`).pluck().get() as string | undefined);
  }

  async *prosody(batch: number): AsyncIterable<ProsodyRow[]> {
    // by rowid, a batch at a time (duplicates stay apart: each has its rowid)
    const page = this.db.prepare(`SELECT rowid,${PROSODY} FROM "prosody" WHERE rowid>? ORDER BY rowid LIMIT ?`).raw(true);
    let after = Number.MIN_SAFE_INTEGER;
    for (;;) {
      const rows = this.read(() => page.all(after, batch) as unknown[][]);
      if (rows.length === 0) return;
      after = rows[rows.length - 1]![0] as number;
      yield rows.map((r) => prosodyRow(r.slice(1), "--from"));
    }
  }

  async archiveAfter(after: number | null, limit: number): Promise<ArchiveRow[]> {
    const rows = this.read(
      () =>
        this.db
          .prepare(`SELECT ${ARCHIVE} FROM "prosodyarchive" WHERE "sort_id">? ORDER BY "sort_id" LIMIT ?`)
          .raw(true)
          .safeIntegers(true)
          .all(BigInt(after ?? Number.MIN_SAFE_INTEGER), limit) as unknown[][],
    );
    return rows.map((r) => archiveRow(r, "--from"));
  }

  async summary(): Promise<Summary> {
    return this.read(() => summaryOf(this.db, "--from"));
  }

  async close(): Promise<void> {
    if (this.db.inTransaction) this.db.exec("COMMIT");
    this.db.close();
  }
}

/** What the destination gets before the copy; the archive's other indexes come at the end, built once. */
const FIRST = new Set(["prosody", "prosody_index", "prosodyarchive"]);
const nameOf = (sql: string) => /"([a-z_]+)"/.exec(sql)![1]!;

export class SqliteDestination implements Destination {
  private readonly db: Database.Database;

  constructor(
    readonly spec: string,
    private readonly file: string,
  ) {
    const using = serverUsing({ driver: "sqlite", database: file, synchronous: "full" });
    if (using) {
      const who = using.pid !== undefined ? `mamkit serve (pid ${using.pid})` : "a running mamkit serve";
      throw new CliError(`--to: ${who} is using ${file} (${using.path} is locked): stop it first`);
    }
    let db: Database.Database | undefined;
    try {
      mkdirSync(dirname(file), { recursive: true });
      db = new Database(file);
      db.pragma("busy_timeout = 5000");
      db.pragma("journal_mode = WAL");
      // "normal" while copying: in WAL mode a crash loses at most the last chunks, with
      // their state, which is consistent either way; finish() commits with "full"
      db.pragma("synchronous = normal");
      const d = db;
      d.transaction(() => {
        const have = new Set(d.prepare("SELECT name FROM sqlite_master WHERE type IN ('table','index')").pluck().all() as string[]);
        for (const sql of PROSODY_SCHEMA) if (FIRST.has(nameOf(sql)) && !have.has(nameOf(sql))) d.exec(sql);
      }).immediate();
      const table = d.prepare("SELECT sql FROM sqlite_master WHERE type='table' AND name='prosodyarchive'").pluck().get() as string;
      if (!/\bAUTOINCREMENT\b/i.test(table)) {
        throw new CliError(`--to: the prosodyarchive table of ${file} has no AUTOINCREMENT sort_id, so positions could be given out twice: use a new file`);
      }
      this.db = d;
    } catch (err) {
      db?.close();
      if (err instanceof CliError) throw err;
      throw new CliError(`--to: cannot open the SQLite database ${file}: ${(err as Error).message}`);
    }
  }

  private write<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof CliError) throw err;
      const busy = /^SQLITE_(BUSY|LOCKED)/.test((err as { code?: string }).code ?? "");
      throw new (busy ? Transient : CliError)(`--to: writing ${this.file} failed: ${(err as Error).message}`);
    }
  }

  private stateRows(): string[] {
    return this.db.prepare(`SELECT "value" FROM "prosody" WHERE ${IS_STATE}`).pluck().all() as string[];
  }

  async inspect(): Promise<Inspection> {
    return this.write(() => {
      const states = this.stateRows();
      if (states.length > 1) throw new CliError(`--to: ${this.file} holds ${states.length} migration state rows: it is no destination mamkit can continue`);
      const max = this.db.prepare('SELECT max("sort_id") FROM "prosodyarchive"').pluck().get() as number | null;
      return {
        prosodyRows: count(this.db, `SELECT count(*) FROM "prosody" WHERE ${NOT_STATE}`),
        archiveRows: count(this.db, 'SELECT count(*) FROM "prosodyarchive"'),
        maxSortId: max,
        state: states[0],
      };
    });
  }

  async start(rows: AsyncIterable<ProsodyRow[]>, state: (rows: number) => string, copied: (rows: number) => void): Promise<number> {
    const insert = this.db.prepare(`INSERT INTO "prosody" (${PROSODY}) VALUES (?,?,?,?,?,?)`);
    this.write(() => this.db.exec("BEGIN IMMEDIATE"));
    try {
      const held = count(this.db, 'SELECT (SELECT count(*) FROM "prosody") + (SELECT count(*) FROM "prosodyarchive")');
      if (held > 0) throw new CliError(`--to: ${this.file} received data while the migration began (another mamkit migrate?)`);
      let n = 0;
      for await (const batch of rows) {
        this.write(() => {
          for (const r of batch) insert.run(r);
        });
        n += batch.length;
        copied(n);
      }
      this.write(() => {
        insert.run(STATE.host, STATE.user, STATE.store, STATE.key, STATE.type, state(n));
        this.db.exec("COMMIT");
      });
      return n;
    } finally {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
    }
  }

  async chunk(rows: ArchiveRow[], from: string, to: string): Promise<void> {
    const move = this.db.prepare(`UPDATE "prosody" SET "value"=? WHERE ${IS_STATE} AND "value"=?`);
    const insert = this.db.prepare(`INSERT INTO "prosodyarchive" (${ARCHIVE}) VALUES (?,?,?,?,?,?,?,?,?)`);
    this.write(() =>
      this.db
        .transaction(() => {
          if (move.run(to, from).changes !== 1) throw new CliError(`--to: the migration state in ${this.file} changed under this run (another mamkit migrate?)`);
          for (const r of rows) insert.run(r);
        })
        .immediate(),
    );
  }

  async complete(): Promise<void> {
    // the SQLite driver creates what is missing of Prosody's schema when it opens
    const driver = this.write(() => new SqliteDriver(this.file, { synchronous: "full" }));
    await driver.close();
  }

  async setSequence(highest: number): Promise<void> {
    this.write(() =>
      this.db
        .transaction(() => {
          const r = this.db.prepare("UPDATE sqlite_sequence SET seq=? WHERE name='prosodyarchive'").run(BigInt(highest));
          if (r.changes === 0 && highest > 0) this.db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('prosodyarchive', ?)").run(BigInt(highest));
        })
        .immediate(),
    );
  }

  async summary(): Promise<Summary> {
    return this.write(() => summaryOf(this.db, "--to"));
  }

  async finish(state: string): Promise<void> {
    this.write(() => {
      this.db.pragma("synchronous = full"); // this commit syncs the WAL: every chunk before it with it
      const r = this.db.prepare(`DELETE FROM "prosody" WHERE ${IS_STATE} AND "value"=?`).run(state);
      if (r.changes !== 1) throw new CliError(`--to: the migration state in ${this.file} changed under this run (another mamkit migrate?)`);
    });
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
