// The SQLite driver (better-sqlite3): Prosody 0.12's SQL schema, exactly, so a
// Prosody database opens in mamkit and the other way round. WAL journal,
// statements prepared once and cached.
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { Checkpointer } from "./checkpointer.js";
import { SqliteArchive } from "./archive.js";
import { WalSync } from "./wal-sync.js";
import { type CommitBackend, DEFAULT_GROUP_COMMIT, GroupCommit, GroupCommitted } from "../group-commit.js";
import { type Row, type RowBackend, RowKeyValueStore, RowMapStore } from "../rows.js";
import { type ArchiveStore, type CommitOptions, type KeyValueStore, type MapStore, type StorageDriver, StorageError } from "../types.js";

/** Prosody 0.12's DDL for SQLite, as Prosody itself issues it. */
export const PROSODY_SCHEMA: readonly string[] = [
  'CREATE TABLE "prosody" ("host" TEXT NOT NULL, "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL, "type" TEXT NOT NULL, "value" TEXT NOT NULL)',
  'CREATE INDEX "prosody_index" ON "prosody" ("host", "user", "store", "key")',
  'CREATE TABLE "prosodyarchive" ("sort_id" INTEGER PRIMARY KEY AUTOINCREMENT, "host" TEXT NOT NULL, "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL, "when" INTEGER NOT NULL, "with" TEXT NOT NULL, "type" TEXT NOT NULL, "value" TEXT NOT NULL)',
  'CREATE UNIQUE INDEX "prosodyarchive_index" ON "prosodyarchive" ("host", "user", "store", "key")',
  'CREATE INDEX "prosodyarchive_with_when" ON "prosodyarchive" ("host", "user", "store", "with", "when")',
  'CREATE INDEX "prosodyarchive_when" ON "prosodyarchive" ("host", "user", "store", "when")',
  'CREATE INDEX "prosodyarchive_sort" ON "prosodyarchive" ("host", "user", "store", "sort_id")',
];

export interface SqliteOptions {
  /** Open an existing database without creating tables or writing. */
  readonly?: boolean;
  /**
   * SQLite's `synchronous` setting. "full" (default) syncs every commit to disk,
   * so an archived message survives a power cut; "normal" is faster in WAL mode
   * but may lose the last commits (never the database) on power loss.
   */
  synchronous?: "full" | "normal";
  /** How writes are grouped into commits. */
  commit?: Partial<CommitOptions>;
  /**
   * Who runs WAL checkpoints: "inline" (SQLite's automatic checkpoint, inside
   * a commit, on the event loop) or "worker" (a worker thread with its own
   * connection, off the event loop: what the server uses).
   */
  checkpoints?: "inline" | "worker";
}


export class SqliteDriver extends GroupCommitted implements StorageDriver, RowBackend {
  readonly name = "sqlite";
  readonly db: Database.Database;
  private readonly cache = new Map<string, Database.Statement>();
  readonly writes: GroupCommit;
  /** Whether prosodyarchive.sort_id is AUTOINCREMENT (positions never reused): Prosody's schema and ours say so. */
  archivePositionsStable = true;
  /** The highest archive position this connection gave out (committed or not). */
  private maxPos = 0;
  /** After a failed commit: the position the archive's sequence must be moved to (its rollback moved it back). */
  private seqAtLeast = 0;
  private checkpointer: Checkpointer | undefined;
  /** Bumped when cached archive counts may be wrong: another connection committed, or a batch rolled back. */
  private countEpoch = 0;
  private readonly archives = new Map<string, SqliteArchive>();
  private dataVersion = -1;
  /** With `synchronous: "full"` and worker checkpoints: the WAL's sync after each commit, off the event loop. */
  private walSync: WalSync | undefined;

  constructor(
    readonly path: string,
    opts: SqliteOptions = {},
  ) {
    super();
    try {
      if (path !== ":memory:" && !opts.readonly) mkdirSync(dirname(path), { recursive: true });
      this.db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
      // first, so that the pragmas and the schema wait for another process opening the same file
      this.db.pragma("busy_timeout = 5000");
      if (!opts.readonly) {
        this.enterWal();
        this.db.pragma(`synchronous = ${opts.synchronous ?? "full"}`);
      }
      if (!opts.readonly) this.createSchema();
      if (!opts.readonly && opts.checkpoints === "worker" && path !== ":memory:") {
        this.db.pragma("wal_autocheckpoint = 0");
        if ((opts.synchronous ?? "full") === "full") {
          // "full" as SQLite's FULL promises it — each commit's WAL frames synced before it counts
          // as durable — but with the sync off the event loop: the writer commits as NORMAL does
          // (no sync; the database is never at risk in WAL mode), then an fdatasync of the WAL
          // on libuv's thread pool makes the batch durable
          this.db.pragma("synchronous = normal");
          this.walSync = new WalSync(`${path}-wal`);
        }
        const module = createRequire(import.meta.url).resolve("better-sqlite3");
        this.checkpointer = new Checkpointer(path, opts.synchronous ?? "full", module, (message) =>
          process.emitWarning(`SQLite checkpoint of ${path} failed: ${message}`),
        );
      }
      const table = this.db.prepare("SELECT sql FROM sqlite_master WHERE type='table' AND name='prosodyarchive'").get() as { sql: string } | undefined;
      this.archivePositionsStable = table === undefined || /\bAUTOINCREMENT\b/i.test(table.sql);
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError("backend", `cannot open SQLite database ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const backend: CommitBackend = {
      begin: () => {
        this.stmt("BEGIN IMMEDIATE").run();
        try {
          if (this.seqAtLeast > 0) this.moveSequence(this.seqAtLeast);
        } catch (err) {
          this.stmt("ROLLBACK").run(); // no transaction left open that nothing tracks
          throw err;
        }
      },
      commit: () => {
        this.stmt("COMMIT").run();
        this.seqAtLeast = 0;
        return this.walSync?.sync();
      },
      rollback: () => this.stmt("ROLLBACK").run(),
      inBatch: () => this.db.inTransaction,
      savepoint: (n) => this.stmt(`SAVEPOINT "${n}"`).run(),
      release: (n) => this.stmt(`RELEASE "${n}"`).run(),
      rollbackTo: (n) => this.stmt(`ROLLBACK TO "${n}"`).run(),
    };
    // A failed commit rolls back the archive's AUTOINCREMENT sequence, which would give the
    // positions of the lost rows out again; a delivery record may already name them.
    // So the next batch first moves the sequence past every position given out.
    this.writes = new GroupCommit(backend, { ...DEFAULT_GROUP_COMMIT, ...opts.commit }, () => {
      this.seqAtLeast = Math.max(this.seqAtLeast, this.maxPos);
      this.countEpoch++;
      this.repairSequence();
    });
  }

  /**
   * Right after a rollback: moves the sequence in a transaction of its own, so
   * that another process writing to the file meanwhile cannot be given the lost
   * positions (it can only in the instant between the rollback and this). If
   * it cannot, the next batch does it first.
   */
  private repairSequence(): void {
    if (this.seqAtLeast === 0 || this.db.inTransaction) return;
    try {
      this.stmt("BEGIN IMMEDIATE").run();
      this.moveSequence(this.seqAtLeast);
      this.stmt("COMMIT").run();
      this.seqAtLeast = 0;
    } catch {
      if (this.db.inTransaction) this.stmt("ROLLBACK").run();
    }
  }

  private moveSequence(to: number): void {
    const name = "prosodyarchive";
    const r = this.stmt('UPDATE "sqlite_sequence" SET "seq"=? WHERE "name"=? AND "seq"<?').run(to, name, to);
    if (r.changes === 0) {
      this.stmt('INSERT INTO "sqlite_sequence" ("name","seq") SELECT ?,? WHERE NOT EXISTS (SELECT 1 FROM "sqlite_sequence" WHERE "name"=?)').run(name, to, name);
    }
  }

  /**
   * The epoch of cached archive counts: it moves when another connection (a
   * second process, Prosody taking its turn, the CLI) committed since we last
   * looked — SQLite's data_version says so — or when a batch of ours rolled back.
   */
  countsEpoch(): number {
    const v = this.stmt("PRAGMA data_version").pluck().get() as number;
    if (v !== this.dataVersion) {
      this.dataVersion = v;
      this.countEpoch++;
    }
    return this.countEpoch;
  }

  /** Cached archive counts are void (a delete across users, an account removed). */
  dropCounts(): void {
    this.countEpoch++;
  }

  /** An archive position was given out. */
  gavePosition(pos: number): void {
    if (pos > this.maxPos) this.maxPos = pos;
  }

  /**
   * PRAGMA journal_mode = WAL needs the file to itself for a moment; while
   * another process opening the same new file holds it, SQLite answers
   * SQLITE_BUSY at once, without asking the busy handler. So: again, every
   * 20 ms, for as long as busy_timeout would have waited.
   */
  private enterWal(): void {
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        this.db.pragma("journal_mode = WAL");
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== "SQLITE_BUSY" || Date.now() > deadline) throw err;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
  }

  private createSchema(): void {
    const missing = () => {
      const have = new Set(
        (this.db.prepare("SELECT name FROM sqlite_master WHERE type IN ('table','index')").all() as { name: string }[]).map(
          (r) => r.name,
        ),
      );
      return PROSODY_SCHEMA.filter((sql) => !have.has(/"([a-z_]+)"/.exec(sql)![1]!));
    };
    if (missing().length === 0) return;
    // Another process may be creating it at the same moment (several `mamkit adduser`
    // on a new file): look again under the write lock, and create what is still missing.
    this.db
      .transaction(() => {
        for (const sql of missing()) this.db.exec(sql);
      })
      .immediate();
  }

  /** A prepared statement, cached by its SQL text. */
  stmt(sql: string): Database.Statement {
    let s = this.cache.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }

  run<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError("backend", `SQLite ${what} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  // ---- rows of the "prosody" table ------------------------------------------------

  rows(host: string, user: string, store: string): Row[] {
    return this.run("read", () =>
      this.stmt('SELECT "key","type","value" FROM "prosody" WHERE "host"=? AND "user"=? AND "store"=?').all(
        host,
        user,
        store,
      ) as Row[],
    );
  }
  row(host: string, user: string, store: string, key: string): Row | undefined {
    return this.run("read", () =>
      this.stmt(
        'SELECT "key","type","value" FROM "prosody" WHERE "host"=? AND "user"=? AND "store"=? AND "key"=? LIMIT 1',
      ).get(host, user, store, key) as Row | undefined,
    );
  }
  deleteRows(host: string, user: string, store: string): void {
    this.run("delete", () =>
      this.stmt('DELETE FROM "prosody" WHERE "host"=? AND "user"=? AND "store"=?').run(host, user, store),
    );
  }
  deleteRow(host: string, user: string, store: string, key: string): void {
    this.run("delete", () =>
      this.stmt('DELETE FROM "prosody" WHERE "host"=? AND "user"=? AND "store"=? AND "key"=?').run(host, user, store, key),
    );
  }
  insertRow(host: string, user: string, store: string, key: string, type: string, value: string): void {
    this.run("insert", () =>
      this.stmt('INSERT INTO "prosody" ("host","user","store","key","type","value") VALUES (?,?,?,?,?,?)').run(
        host,
        user,
        store,
        key,
        type,
        value,
      ),
    );
  }
  users(host: string, store: string): string[] {
    return this.run("read", () =>
      (
        this.stmt('SELECT DISTINCT "user" FROM "prosody" WHERE "host"=? AND "store"=? AND "user"<>\'\'').all(
          host,
          store,
        ) as { user: string }[]
      ).map((r) => r.user),
    );
  }

  keyval(host: string, store: string): KeyValueStore {
    return new RowKeyValueStore(this, host, store);
  }

  map(host: string, store: string): MapStore {
    return new RowMapStore(this, host, store);
  }

  archive(host: string, store: string): ArchiveStore {
    // one object per archive: its cached counts must see every write to it
    const k = `${host}\u0000${store}`;
    let a = this.archives.get(k);
    if (!a) {
      a = new SqliteArchive(this, host, store);
      this.archives.set(k, a);
    }
    return a;
  }

  async deleteUser(host: string, user: string): Promise<void> {
    this.dropCounts();
    await this.writes.write(() =>
      this.run("delete", () => {
        this.stmt('DELETE FROM "prosody" WHERE "host"=? AND "user"=?').run(host, user);
        this.stmt('DELETE FROM "prosodyarchive" WHERE "host"=? AND "user"=?').run(host, user);
      }),
    );
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    await this.writes.closeAndSettle();
    this.walSync?.close();
    await this.checkpointer?.stop();
    this.checkpointer = undefined;
    if (this.db.open) this.db.close(); // the last connection: SQLite checkpoints the WAL into the file
  }

  /** Commits what is pending and closes, synchronously (for exit handlers). */
  closeNow(): void {
    if (!this.db.open) return;
    this.writes.close();
    this.walSync?.syncNow(); // what was committed, synced before it returns
    this.walSync?.close();
    void this.checkpointer?.stop();
    this.db.close();
  }
}

