// Transactions of the PostgreSQL driver (`driver.transaction(fn)`): a
// connection of the pool of its own for the whole of `fn`, found again by the
// writes and reads made inside it through the async context; nested ones
// under savepoints, one after the other. A transaction takes a user's
// advisory lock before it first touches that user's data, and holds it to
// its end, as the group commit's batches do.
import { AsyncLocalStorage } from "node:async_hooks";
import type pg from "pg";
import { StorageError } from "../types.js";
import { checkout, isConnectionError, type Queryable } from "./connection.js";
import type { AppendResult, AppendRow, WriteOp } from "./ops.js";
import { LOCK_USER } from "./schema.js";

/** A transaction running: its connection, the user locks it holds, its nested ones in turn. */
export interface Tx {
  client: pg.PoolClient;
  locked: Set<number>;
  chain: Promise<unknown>;
}

const LOCK_MANY = "SELECT pg_advisory_xact_lock($1, k) FROM (SELECT k FROM unnest($2::int[]) k ORDER BY k OFFSET 0) s";

export class PgTransactions {
  private readonly ctx = new AsyncLocalStorage<Tx>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly appendMany: (c: Queryable, rows: AppendRow[]) => Promise<AppendResult[]>,
    private readonly describe: (err: unknown) => StorageError,
    /** Resolves once the driver may run statements. */
    private readonly ready: () => Promise<void>,
  ) {}

  /** The transaction the caller runs in, if any. */
  current(): Tx | undefined {
    return this.ctx.getStore();
  }

  async run<T>(fn: () => T | Promise<T>): Promise<T> {
    const outer = this.ctx.getStore();
    if (outer !== undefined) return this.nested(outer, fn);
    await this.ready();
    let client: pg.PoolClient;
    try {
      client = await checkout(this.pool);
    } catch (err) {
      throw this.describe(err);
    }
    const tx: Tx = { client, locked: new Set(), chain: Promise.resolve() };
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      const r = await this.ctx.run(tx, fn);
      await tx.chain;
      // (a transaction a failed statement aborted answers COMMIT with ROLLBACK, and no error)
      const done = await client.query("COMMIT");
      if (done.command === "ROLLBACK") throw new StorageError("backend", "the transaction was rolled back: a statement in it failed");
      return r;
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      else await client.query("ROLLBACK").catch(() => undefined);
      throw err instanceof StorageError ? err : this.describe(err);
    } finally {
      client.release(broken);
    }
  }

  /** Inside a transaction: after the nested ones before it, under a savepoint. */
  private nested<T>(tx: Tx, fn: () => T | Promise<T>): Promise<T> {
    const run = tx.chain.then(async () => {
      // a rollback to the savepoint also lets go of the user locks taken after it
      const held = new Set(tx.locked);
      await tx.client.query("SAVEPOINT t");
      try {
        const r = await fn();
        await tx.client.query("RELEASE t");
        return r;
      } catch (err) {
        await tx.client.query("ROLLBACK TO t").catch(() => undefined);
        tx.locked = held;
        throw err;
      }
    });
    tx.chain = run.catch(() => undefined);
    return run;
  }

  async lockIn(tx: Tx, locks: readonly number[]): Promise<void> {
    const missing = locks.filter((k) => !tx.locked.has(k));
    if (missing.length === 0) return;
    await tx.client.query(LOCK_MANY, [LOCK_USER, missing]);
    for (const k of missing) tx.locked.add(k); // (only once granted)
  }

  /**
   * A write inside a transaction, under a savepoint of its own: one that
   * fails is undone alone, and the transaction can go on (as on SQLite).
   */
  async write<T>(tx: Tx, op: WriteOp<T>): Promise<T> {
    try {
      await this.lockIn(tx, op.locks);
      await tx.client.query("SAVEPOINT w");
      try {
        const r = op.append === undefined ? await op.run(tx.client) : ((await this.appendMany(tx.client, [op.append]))[0] as T);
        await tx.client.query("RELEASE w");
        return r;
      } catch (err) {
        await tx.client.query("ROLLBACK TO w").catch(() => undefined);
        await tx.client.query("RELEASE w").catch(() => undefined);
        throw err;
      }
    } catch (err) {
      throw err instanceof StorageError ? err : this.describe(err);
    }
  }
}
