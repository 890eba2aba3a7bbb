// The SQLite driver (better-sqlite3): Prosody 0.12's SQL schema, exactly, so a
// Prosody database opens in mamkit and the other way round. WAL journal,
// statements prepared once and cached.
import { randomUUID } from "node:crypto";
import { closeSync, fdatasync, fdatasyncSync, mkdirSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { decodeValue, serializeXml } from "../codec.js";
import { Checkpointer } from "./checkpointer.js";
import { toSeconds } from "../filter.js";
import { type CommitBackend, DEFAULT_GROUP_COMMIT, GroupCommit, GroupCommitted } from "../group-commit.js";
import { read, type Row, type RowBackend, RowKeyValueStore, RowMapStore } from "../rows.js";
import {
  type ArchiveAppend,
  type ArchiveCaps,
  type ArchiveDeleteQuery,
  type ArchiveItem,
  type ArchivePage,
  type ArchiveQuery,
  type ArchiveRef,
  type ArchiveStore,
  type ArchiveSummary,
  type CommitOptions,
  type KeyValueStore,
  type MapStore,
  type StorageDriver,
  StorageError,
} from "../types.js";
import { Element } from "@xmpp/xml";

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

interface ArchiveRow {
  sort_id: number;
  key: string;
  when: number;
  with: string;
  type: string;
  value: string;
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

/**
 * fdatasync of the WAL file on libuv's thread pool. Syncs are coalesced: one
 * asked for while another runs waits for it, then one more covers everyone
 * who asked meanwhile (a sync covers every write made before it began).
 */
class WalSync {
  private fd: number | undefined;
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly file: string) {}

  sync(): Promise<void> {
    if (this.running === undefined) {
      this.running = this.once().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.sync();
      });
    return this.next;
  }

  private once(): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        this.fd ??= openSync(this.file, "r");
      } catch (err) {
        reject(err);
        return;
      }
      fdatasync(this.fd, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Syncs now, on this thread (for closing synchronously). */
  syncNow(): void {
    try {
      this.fd ??= openSync(this.file, "r");
      fdatasyncSync(this.fd);
    } catch {
      // no WAL file (nothing was written): nothing to sync
    }
  }

  close(): void {
    // (a sync still running keeps its descriptor: closed, the number could be reused by another file)
    if (this.fd !== undefined && this.running === undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

const COLS = 'SELECT "sort_id","key","when","with","type","value" FROM "prosodyarchive"';

class SqliteArchive implements ArchiveStore {
  readonly caps: ArchiveCaps;
  // Each user's whole count, and per conversation partner (the RSM <count/> of
  // every unfiltered or `with`-only page, which Prosody counts row by row on
  // every query): counted once, then kept up to date with this connection's
  // own appends and deletes; dropped when another connection committed or a
  // batch rolled back (countsEpoch). user → (with, or "" for all) → count
  private readonly counts = new Map<string, Map<string, number>>();
  private epoch = -1;

  constructor(
    private readonly d: SqliteDriver,
    private readonly host: string,
    private readonly store: string,
  ) {
    this.caps = { total: true, wildcardDelete: true, ids: true, stablePositions: d.archivePositionsStable };
  }

  append(user: string, item: ArchiveAppend): Promise<ArchiveRef> {
    const id = item.id ?? randomUUID();
    const when = toSeconds(item.when);
    const value = serializeXml(item.stanza);
    const insert = () =>
      this.d
        .stmt(
          'INSERT INTO "prosodyarchive" ("host","user","store","when","with","key","type","value") VALUES (?,?,?,?,?,?,\'xml\',?)',
        )
        .run(this.host, user, this.store, when, item.with, id, value);
    // One transaction: the insert, and the user's previous position read under the
    // same write lock. sort_id is AUTOINCREMENT, so every row below `pos` is
    // committed and none can appear there later, whoever writes to the file.
    const write = () => {
      if (item.id !== undefined) {
        this.d
          .stmt('DELETE FROM "prosodyarchive" WHERE "host"=? AND "user"=? AND "store"=? AND "key"=?')
          .run(this.host, user, this.store, id);
      }
      const p = Number(insert().lastInsertRowid);
      const row = this.d
        .stmt('SELECT "sort_id" AS "prev" FROM "prosodyarchive" WHERE "host"=? AND "user"=? AND "store"=? AND "sort_id"<? ORDER BY "sort_id" DESC LIMIT 1')
        .get(this.host, user, this.store, p) as { prev: number | bigint } | undefined;
      return [p, row === undefined ? undefined : Number(row.prev)] as const;
    };
    // A plain append is one statement, atomic by itself: no savepoint (they cost as much as the
    // insert); a replacement by id keeps one, so that its delete and insert stay one.
    return this.d.writes.write(() => {
      const [pos, prev] = this.d.run("append", write);
      this.d.gavePosition(pos);
      const mine = this.counts.get(user);
      if (mine !== undefined && item.id === undefined) {
        for (const k of ["", item.with]) {
          const n = mine.get(k);
          if (n !== undefined) mine.set(k, n + 1);
        }
      } else this.counts.delete(user);
      return prev === undefined ? { id, pos, when: when * 1000 } : { id, pos, when: when * 1000, prev };
    }, item.id === undefined);
  }

  private where(user: string | null, q: ArchiveQuery & ArchiveDeleteQuery): [string, unknown[]] {
    const parts = ['"host"=?', '"store"=?'];
    const args: unknown[] = [this.host, this.store];
    if (user !== null) {
      parts.push('"user"=?');
      args.push(user);
    }
    if (q.start !== undefined) {
      parts.push('"when">=?');
      args.push(q.start / 1000);
    }
    if (q.end !== undefined) {
      parts.push('"when"<=?');
      args.push(q.end / 1000);
    }
    if (q.with !== undefined) {
      parts.push('"with"=?');
      args.push(q.with);
    }
    if (q.ids !== undefined) {
      parts.push('"key" IN (SELECT value FROM json_each(?))');
      args.push(JSON.stringify(q.ids));
    }
    return [parts.join(" AND "), args];
  }

  private posOf(user: string, id: string): number {
    const row = this.d
      .stmt('SELECT "sort_id" FROM "prosodyarchive" WHERE "host"=? AND "user"=? AND "store"=? AND "key"=?')
      .get(this.host, user, this.store, id) as { sort_id: number } | undefined;
    if (!row) throw new StorageError("item-not-found", "no archive item with this id");
    return row.sort_id;
  }

  find(user: string, q: ArchiveQuery = {}): Promise<ArchivePage> {
    return read(() => this.findNow(user, q));
  }

  private findNow(user: string, q: ArchiveQuery): ArchivePage {
    return this.d.run("query", () => {
      const [where, args] = this.where(user, q);
      const page: ArchivePage = { items: [] };
      if (q.total) {
        const cacheable = q.start === undefined && q.end === undefined && q.ids === undefined;
        page.total = cacheable ? this.cachedCount(user, q.with ?? "", where, args) : this.count(where, args);
      }
      let range = "";
      const rargs = args.slice();
      const lo = q.after !== undefined ? this.posOf(user, q.after) : undefined;
      const hi = q.before !== undefined ? this.posOf(user, q.before) : undefined;
      for (const [op, v] of [
        [">", lo],
        [">", q.afterPos],
        ["<", hi],
        ["<", q.beforePos],
      ] as const) {
        if (v === undefined) continue;
        range += ` AND "sort_id"${op}?`;
        rargs.push(v);
      }
      const order = ` ORDER BY "sort_id" ${q.reverse ? "DESC" : "ASC"}`;
      let sql: string;
      if ((q.start !== undefined || q.end !== undefined) && q.limit !== undefined) {
        // A date range is found through the (host, user, store, when) index and its rows
        // sorted by position: sort the positions alone (the index covers them), then read
        // only the page's rows — about 40 % faster on a day of 3,300 rows
        sql = `${COLS} WHERE "sort_id" IN (SELECT "sort_id" FROM "prosodyarchive" WHERE ${where}${range}${order} LIMIT ?)${order}`;
        rargs.push(q.limit);
      } else {
        sql = `${COLS} WHERE ${where}${range}${order}`;
        if (q.limit !== undefined) {
          sql += " LIMIT ?";
          rargs.push(q.limit);
        }
      }
      const rows = this.d.stmt(sql).all(...rargs) as ArchiveRow[];
      page.items = rows.map(toItem);
      return page;
    });
  }

  private count(where: string, args: unknown[]): number {
    return (this.d.stmt(`SELECT COUNT(*) AS n FROM "prosodyarchive" WHERE ${where}`).get(...args) as { n: number }).n;
  }

  /** The count of the user's items (with `peer`, or all for ""), from the cache where it holds. */
  private cachedCount(user: string, peer: string, where: string, args: unknown[]): number {
    const epoch = this.d.countsEpoch();
    if (epoch !== this.epoch) {
      this.counts.clear();
      this.epoch = epoch;
    }
    let mine = this.counts.get(user);
    if (mine === undefined) {
      mine = new Map();
      this.counts.set(user, mine);
    }
    let n = mine.get(peer);
    if (n === undefined) {
      n = this.count(where, args);
      mine.set(peer, n);
    }
    return n;
  }

  get(user: string, id: string): Promise<ArchiveItem | undefined> {
    return read(() => this.d.run("query", () => {
      const row = this.d
        .stmt(`${COLS} WHERE "host"=? AND "user"=? AND "store"=? AND "key"=?`)
        .get(this.host, user, this.store, id) as ArchiveRow | undefined;
      return row && toItem(row);
    }));
  }

  delete(user: string | null, q: ArchiveDeleteQuery = {}): Promise<number> {
    if (user === null) this.counts.clear();
    else this.counts.delete(user);
    return this.d.writes.write(() => {
      const n = this.deleteNow(user, q);
      if (user === null) this.counts.clear();
      else this.counts.delete(user);
      return n;
    }, true);
  }

  private deleteNow(user: string | null, q: ArchiveDeleteQuery): number {
    return this.d.run("delete", () => {
      const [where, args] = this.where(user, q);
      let sql = where;
      if (q.fromPos !== undefined) {
        sql += ' AND "sort_id">=?';
        args.push(q.fromPos);
      }
      if (q.toPos !== undefined) {
        sql += ' AND "sort_id"<=?';
        args.push(q.toPos);
      }
      if (q.limit !== undefined) {
        sql = `"sort_id" IN (SELECT "sort_id" FROM "prosodyarchive" WHERE ${sql} ORDER BY "sort_id" LIMIT ?)`;
        args.push(q.limit);
      }
      return this.d.stmt(`DELETE FROM "prosodyarchive" WHERE ${sql}`).run(...args).changes;
    });
  }

  summary(user: string): Promise<ArchiveSummary> {
    return read(() => this.summaryNow(user));
  }

  private summaryNow(user: string): ArchiveSummary {
    return this.d.run("query", () => {
      const base = 'FROM "prosodyarchive" WHERE "host"=? AND "user"=? AND "store"=?';
      const args = [this.host, user, this.store];
      const { n } = this.d.stmt(`SELECT COUNT(*) AS n ${base}`).get(...args) as { n: number };
      const s: ArchiveSummary = { count: n };
      if (n === 0) return s;
      const ref = (r: { key: string; sort_id: number; when: number }) => ({
        id: r.key,
        pos: r.sort_id,
        when: Math.round(r.when * 1000),
      });
      s.first = ref(this.d.stmt(`SELECT "key","sort_id","when" ${base} ORDER BY "sort_id" ASC LIMIT 1`).get(...args) as never);
      s.last = ref(this.d.stmt(`SELECT "key","sort_id","when" ${base} ORDER BY "sort_id" DESC LIMIT 1`).get(...args) as never);
      return s;
    });
  }

  users(): Promise<string[]> {
    return read(() => this.d.run("query", () =>
      (
        this.d.stmt('SELECT DISTINCT "user" FROM "prosodyarchive" WHERE "host"=? AND "store"=?').all(
          this.host,
          this.store,
        ) as { user: string }[]
      ).map((r) => r.user),
    ));
  }
}

function toItem(r: ArchiveRow): ArchiveItem {
  const stanza = decodeValue(r.type, r.value);
  if (!(stanza instanceof Element)) throw new StorageError("bad-value", "archive item is not a stanza");
  return { id: r.key, pos: r.sort_id, when: Math.round(Number(r.when) * 1000), with: r.with, stanza };
}
