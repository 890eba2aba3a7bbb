// The PostgreSQL driver (node-postgres): Prosody 0.12's schema as its
// mod_storage_sql creates it on PostgreSQL, shared by any number of mamkit
// nodes (and Prosody). Reads go to a pool; writes go through the group commit
// (writer.ts) on a connection of their own.
import { randomUUID } from "node:crypto";
import type pg from "pg";
import { DEFAULT_GROUP_COMMIT } from "../group-commit.js";
import { type ArchiveStore, type CommitOptions, type Coordination, type KeyValueStore, type MapStore, type StorageDriver, StorageError } from "../types.js";
import { appendRows, PgArchive } from "./archive.js";
import { checkout, connectionProblem, newPool, type PgTarget } from "./connection.js";
import { PgKeyValueStore, PgMapStore } from "./rows.js";
import { NODE_PREFIX, PgCoordination } from "./coordination.js";
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
  /** This process among the nodes on the database. */
  readonly nodeId = randomUUID();
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
    // (a node's connections are named after it once it coordinates: see coordination())
    this.pool = newPool(this.target, this.target.pool, "mamkit");
    this.writerPool = newPool(this.target, 1, "mamkit writer", true);
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
      // a sequence that caches values per connection hands them out out of commit order
      // (connection A: 1..20, B: 21..40, then A's 2 after B's 21): positions would not be exact
      const cache = await c.query("SELECT seqcache FROM pg_sequence WHERE seqrelid = $1::regclass", [this.seqName]);
      const n = Number(cache.rows[0]?.seqcache ?? 1);
      if (n > 1) {
        throw new StorageError(
          "backend",
          `the archive's sequence ${this.seqName} has CACHE ${n} (${this.target.setting}): positions would not follow the order of commits; run ALTER SEQUENCE ${this.seqName} CACHE 1`,
        );
      }
      // the writer's connection now: it stays, so that other nodes see this one alive
      (await checkout(this.writerPool)).release();
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
    if (this.coordinating === undefined) {
      // From now on every connection carries the node's id (see coordination.ts): other nodes
      // count this one alive while any is there. A driver that does not coordinate (a CLI
      // command, a script) is no node, and no barrier waits for it.
      const name = (p: pg.Pool, n: string) => {
        (p as unknown as { options: { application_name: string } }).options.application_name = n;
      };
      name(this.pool, `${NODE_PREFIX}${this.nodeId}`);
      name(this.writerPool, `${NODE_PREFIX}${this.nodeId}:writer`);
      // the writer's connection, which stays open, may be there already (ready() made it)
      void this.opened
        .then(() => checkout(this.writerPool))
        .then(async (c) => {
          await c.query("SELECT set_config('application_name', $1, false)", [`${NODE_PREFIX}${this.nodeId}:writer`]).finally(() => c.release());
        })
        .catch(() => undefined);
      this.coordinating = new PgCoordination(this.nodeId, this.target, this.pool, warn);
    }
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
