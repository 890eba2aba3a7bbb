// The PostgreSQL driver (node-postgres): Prosody 0.12's schema as its
// mod_storage_sql creates it on PostgreSQL, shared by any number of mamkit
// nodes (and Prosody). Reads go to a pool; writes go through the group commit
// (writer.ts) on a connection of their own.
import type pg from "pg";
import { DEFAULT_GROUP_COMMIT } from "../group-commit.js";
import { type ArchiveStore, type CommitOptions, type Coordination, type KeyValueStore, type MapStore, type StorageDriver, StorageError } from "../types.js";
import { appendRows, PgArchive } from "./archive.js";
import { checkout, connectionProblem, newPool, type PgTarget } from "./connection.js";
import { PgKeyValueStore, PgMapStore } from "./rows.js";
import { PgCoordination } from "./coordination.js";
import { ensureSchema, lockKey } from "./schema.js";
import { PgWriter } from "./writer.js";

export interface PostgresOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Connections for reads and transactions (default 10); the writer has one more. */
  pool?: number;
  /** The config setting named in connection errors (default "storage.url"). */
  setting?: string;
  commit?: Partial<CommitOptions>;
  /** How long writes wait for a server out of reach before they fail (default 30 s). */
  retryMs?: number;
  /** Create the tables when missing (default true; false: a source that is only read). */
  createSchema?: boolean;
}

export class PostgresDriver implements StorageDriver {
  readonly name = "postgres";
  readonly target: PgTarget;
  private readonly pool: pg.Pool;
  private readonly writerPool: pg.Pool;
  readonly writes: PgWriter;
  private seqName = '"prosodyarchive_sort_id_seq"';
  private readonly opened: Promise<void>;
  private closing: Promise<void> | undefined;
  private coordinating: PgCoordination | undefined;

  constructor(opts: PostgresOptions) {
    this.target = { url: opts.url, pool: opts.pool ?? 10, setting: opts.setting ?? "storage.url" };
    this.pool = newPool(this.target, this.target.pool, "mamkit");
    this.writerPool = newPool(this.target, 1, "mamkit writer");
    const commit = { ...DEFAULT_GROUP_COMMIT, ...opts.commit };
    this.writes = new PgWriter(
      this.writerPool,
      this.pool,
      { ...commit, retryMs: opts.retryMs ?? 30_000 },
      (c, rows) => appendRows(c, this.seqName, rows),
      (err) => (err instanceof StorageError ? err : connectionProblem(err, this.target)),
    );
    this.opened = this.open(opts.createSchema ?? true);
    this.opened.catch(() => undefined); // reported by ready() and by every operation
    this.writes.waitFor(this.opened);
  }

  private async open(create: boolean): Promise<void> {
    let c: pg.PoolClient;
    try {
      c = await checkout(this.pool);
    } catch (err) {
      throw connectionProblem(err, this.target);
    }
    try {
      await ensureSchema(c, create);
      const r = await c.query("SELECT pg_get_serial_sequence('\"prosodyarchive\"', 'sort_id') AS s");
      if (typeof r.rows[0]?.s === "string") this.seqName = r.rows[0].s;
    } catch (err) {
      throw err instanceof StorageError ? err : connectionProblem(err, this.target);
    } finally {
      c.release();
    }
  }

  /** Resolves once connected with the schema in place; rejects saying what is wrong (naming the setting). */
  ready(): Promise<void> {
    return this.opened;
  }

  keyval(host: string, store: string): KeyValueStore {
    return new PgKeyValueStore(this.writes, host, store);
  }

  map(host: string, store: string): MapStore {
    return new PgMapStore(this.writes, host, store);
  }

  archive(host: string, store: string): ArchiveStore {
    return new PgArchive(this.writes, host, store, () => this.seqName);
  }

  transaction<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.writes.transaction(fn);
  }

  mark(): number {
    return this.writes.mark();
  }

  durable(mark?: number): Promise<void> {
    return this.writes.durable(mark);
  }

  injectCommitFailures(n: number): void {
    this.writes.injectCommitFailures(n);
  }

  async deleteUser(host: string, user: string): Promise<void> {
    await this.writes.write({
      locks: [lockKey(host, user)],
      run: async (c) => {
        await c.query('DELETE FROM "prosody" WHERE "host"=$1 AND "user"=$2', [host, user]);
        await c.query('DELETE FROM "prosodyarchive" WHERE "host"=$1 AND "user"=$2', [host, user]);
      },
    });
  }

  /** The nodes on this database: one listening connection, made on the first call. */
  coordination(warn: (message: string, err?: unknown) => void): Coordination {
    this.coordinating ??= new PgCoordination(this.target, this.pool, warn);
    return this.coordinating;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.coordinating?.close();
      await this.writes.close();
      await Promise.all([this.pool.end(), this.writerPool.end()]);
    })();
    return this.closing;
  }
}
