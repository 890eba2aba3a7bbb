// The group commit of the PostgreSQL driver. Writes queue up; while one batch
// is in flight on the writer's connection, the next one gathers, so that many
// stanzas share one transaction (and one commit). A write's promise resolves
// once its batch committed: applied and durable at once, as PostgreSQL's
// synchronous_commit defines it.
//
// Each batch first takes the advisory locks of the users it writes, in one
// order (no deadlock between nodes), and holds them to its commit. A user's
// appends are therefore serialised whoever writes: a position is drawn from
// the sequence only under the lock, after every earlier append of that user
// committed, so no lower position of the user can appear later and `prev` is
// exact (see docs/postgresql.md, "Positions under concurrent writers").
//
// Failures: while the server is out of reach the batch is retried (nothing of
// it committed) for up to `retryMs`; a batch whose COMMIT got no answer is in
// doubt, settled by looking for its first appended row; a statement that
// fails is retried alone, so that one bad write fails only itself.
import type pg from "pg";
import { StorageError } from "../types.js";
import { checkout, isConnectionError, isRefusal, isTransient, type Queryable } from "./connection.js";
import type { AppendResult, AppendRow, WriteOp } from "./ops.js";
import { LOCK_USER } from "./schema.js";
import { PgTransactions } from "./transactions.js";

export type { AppendResult, AppendRow, WriteOp } from "./ops.js";

interface Pending {
  op: WriteOp<unknown>;
  seq: number;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export interface WriterOptions {
  commitDelayMs: number;
  commitMaxWrites: number;
  /** How long a batch is retried while the server is out of reach. */
  retryMs: number;
}

type Outcome =
  | { kind: "done"; results: unknown[] }
  | { kind: "unreachable"; err: unknown }
  | { kind: "in-doubt"; results: unknown[]; err: unknown }
  | { kind: "transient" | "statement" | "refused" | "lost"; err: unknown };

const LOCK_MANY = "SELECT pg_advisory_xact_lock($1, k) FROM (SELECT k FROM unnest($2::int[]) k ORDER BY k OFFSET 0) s";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export class PgWriter {
  private queue: Pending[] = [];
  private running = false;
  private seq = 0;
  /** Every write up to this sequence number is settled. */
  private settledSeq = 0;
  private readonly waiters: { seq: number; wake: () => void }[] = [];
  private failures = 0;
  private injected = 0;
  /** Batches committed, and the writes they held (for tests and benchmarks: how well writes group). */
  readonly stats = { batches: 0, writes: 0 };
  private closed = false;
  private readonly txs: PgTransactions;
  private idle: Promise<void> = Promise.resolve();
  private wakeIdle: (() => void) | undefined;
  /** Settles once the driver connected and the schema is there: nothing runs before. */
  private gate: Promise<void> = Promise.resolve();

  constructor(
    /** The writer's own connection (a pool of one), and the pool transactions use. */
    private readonly writerPool: pg.Pool,
    private readonly txPool: pg.Pool,
    private readonly opts: WriterOptions,
    private readonly appendMany: (c: Queryable, rows: AppendRow[]) => Promise<AppendResult[]>,
    /** Makes a driver error into what callers see (naming the setting). */
    private readonly describe: (err: unknown) => StorageError,
  ) {
    this.txs = new PgTransactions(txPool, appendMany, describe, () => this.gate);
  }

  /** Holds every statement back until `opened` resolves (a rejection fails them with its error). */
  waitFor(opened: Promise<void>): void {
    this.gate = opened;
  }

  mark(): number {
    return this.failures;
  }

  inTransaction(): boolean {
    return this.txs.current() !== undefined;
  }

  /** Queues a write (inside a transaction: runs it there); resolves once committed. */
  write<T>(op: WriteOp<T>): Promise<T> {
    const tx = this.txs.current();
    if (tx !== undefined) return this.txs.write(tx, op);
    if (this.closed) return Promise.reject(new StorageError("backend", "the storage is closed"));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op: op as WriteOp<unknown>, seq: ++this.seq, resolve: resolve as (v: unknown) => void, reject });
      this.kick();
    });
  }

  /**
   * A read: in a transaction on its connection (taking the users' locks), else
   * on the pool — retried, as writes are, while the server is out of reach.
   */
  async read(sql: string, values: unknown[], locks: readonly number[] = []): Promise<Record<string, unknown>[]> {
    await this.gate;
    const tx = this.txs.current();
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        if (tx === undefined) return (await this.txPool.query(sql, values)).rows;
        await this.txs.lockIn(tx, locks);
        return (await tx.client.query(sql, values)).rows;
      } catch (err) {
        if (tx !== undefined || !isConnectionError(err) || this.closed || Date.now() - started > this.opts.retryMs) throw this.describe(err);
        await sleep(Math.min(50 * 2 ** attempt, 1000));
      }
    }
  }

  private kick(): void {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    this.idle = new Promise((r) => {
      this.wakeIdle = r;
    });
    const go = () => void this.drain();
    if (this.opts.commitDelayMs > 0) setTimeout(go, this.opts.commitDelayMs);
    else setImmediate(go);
  }

  private async drain(): Promise<void> {
    const opened = await this.gate.then(
      () => undefined,
      (err: unknown) => err,
    );
    if (opened !== undefined) {
      // never connected: what is queued fails with the reason
      const batch = this.queue.splice(0);
      this.fail(batch, opened);
      this.settle(batch[batch.length - 1]!.seq);
    }
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.opts.commitMaxWrites);
      await this.runBatch(batch);
      this.settle(batch[batch.length - 1]!.seq);
    }
    this.running = false;
    this.wakeIdle?.();
  }

  private settle(seq: number): void {
    this.settledSeq = Math.max(this.settledSeq, seq);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (this.waiters[i]!.seq <= this.settledSeq) this.waiters.splice(i, 1)[0]!.wake();
    }
  }

  private async runBatch(batch: Pending[]): Promise<void> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      const o = await this.attempt(batch);
      switch (o.kind) {
        case "done":
          for (const [i, p] of batch.entries()) p.resolve(o.results[i]);
          return;
        case "in-doubt": {
          const committed = await this.committed(batch, o.results);
          if (committed === true) {
            for (const [i, p] of batch.entries()) p.resolve(o.results[i]);
            return;
          }
          if (committed === false) break; // nothing of it is there: run it again
          return this.fail(batch, o.err);
        }
        case "unreachable":
          if (this.closed || Date.now() - started > this.opts.retryMs) return this.fail(batch, o.err);
          await sleep(Math.min(50 * 2 ** attempt, 1000));
          break;
        case "transient":
          if (attempt < 5) break;
          return this.split(batch, o.err);
        case "statement":
          return this.split(batch, o.err);
        default:
          return this.fail(batch, o.err);
      }
    }
  }

  /** One statement failed: each write alone, in order, so that only the bad one fails. */
  private async split(batch: Pending[], err: unknown): Promise<void> {
    if (batch.length === 1) {
      // (a statement that fails is a server-side failure — a full disk, a read-only standby —
      // and its write is lost as surely as a failed commit: marks taken before it must learn of it)
      this.failures++;
      batch[0]!.reject(err instanceof StorageError ? err : this.describe(err));
      return;
    }
    for (const p of batch) await this.runBatch([p]);
  }

  /** The batch is lost: its writes reject, and every mark taken before now learns of it. */
  private fail(batch: Pending[], err: unknown): void {
    this.failures++;
    const e = err instanceof StorageError ? err : this.describe(err);
    for (const p of batch) p.reject(e);
  }

  private async attempt(batch: Pending[]): Promise<Outcome> {
    let client: pg.PoolClient;
    try {
      client = await checkout(this.writerPool);
    } catch (err) {
      return { kind: isRefusal(err) ? "refused" : "unreachable", err };
    }
    let results: unknown[] = [];
    let commitSent = false;
    try {
      await client.query("BEGIN");
      const locks = [...new Set(batch.flatMap((p) => p.op.locks))];
      if (locks.length > 0) await client.query(LOCK_MANY, [LOCK_USER, locks]);
      results = await this.runOps(client, batch);
      if (this.injected > 0) {
        this.injected--;
        await client.query("ROLLBACK");
        client.release();
        return { kind: "lost", err: new StorageError("backend", "injected commit failure") };
      }
      commitSent = true;
      const done = await client.query("COMMIT");
      client.release();
      if (done.command === "ROLLBACK") return { kind: "statement", err: new StorageError("backend", "the batch was rolled back") };
      this.stats.batches++;
      this.stats.writes += batch.length;
      return { kind: "done", results };
    } catch (err) {
      if (isConnectionError(err)) {
        client.release(err as Error); // the pool drops this connection
        return commitSent ? { kind: "in-doubt", results, err } : { kind: "unreachable", err };
      }
      await client.query("ROLLBACK").catch(() => undefined);
      client.release();
      return { kind: isTransient(err) ? "transient" : "statement", err };
    }
  }

  private async runOps(c: Queryable, batch: Pending[]): Promise<unknown[]> {
    const results: unknown[] = new Array(batch.length);
    for (let i = 0; i < batch.length; ) {
      const op = batch[i]!.op;
      if (op.append === undefined) {
        results[i] = await op.run(c);
        i++;
        continue;
      }
      // the appends next to each other: one statement
      let j = i;
      while (j < batch.length && batch[j]!.op.append !== undefined) j++;
      const refs = await this.appendMany(c, batch.slice(i, j).map((p) => p.op.append!));
      for (let k = 0; k < refs.length; k++) results[i + k] = refs[k];
      i = j;
    }
    return results;
  }

  /**
   * A COMMIT without an answer: did it happen? The batch is one transaction,
   * so one of its appended rows tells (undefined: it holds none, cannot tell).
   */
  private async committed(batch: Pending[], results: unknown[]): Promise<boolean | undefined> {
    const i = batch.findIndex((p) => p.op.append !== undefined);
    if (i < 0) return undefined;
    const pos = (results[i] as AppendResult).pos;
    const row = batch[i]!.op.append!;
    const deadline = Date.now() + this.opts.retryMs;
    while (!this.closed && Date.now() < deadline) {
      try {
        // (by its key, a fresh UUID: after a crash another writer's row may hold the same sort_id)
        const r = await this.txPool.query('SELECT 1 FROM "prosodyarchive" WHERE "sort_id"=$1 AND "host"=$2 AND "user"=$3 AND "store"=$4 AND "key"=$5', [pos, row.host, row.user, row.store, row.key]);
        return r.rows.length > 0;
      } catch (err) {
        if (!isConnectionError(err)) return undefined;
        await sleep(200);
      }
    }
    return undefined;
  }

  transaction<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.txs.current() === undefined && this.closed) return Promise.reject(new StorageError("backend", "the storage is closed"));
    return this.txs.run(fn);
  }

  // ---- durability -----------------------------------------------------------------

  durable(mark?: number): Promise<void> {
    if (this.inTransaction()) {
      return Promise.reject(new StorageError("backend", "durable() inside a transaction would wait for itself"));
    }
    const lost = () => (mark !== undefined && this.failures > mark ? Promise.reject(lostWrites()) : Promise.resolve());
    const upTo = this.seq;
    if (this.settledSeq >= upTo) return lost();
    return new Promise<void>((wake) => this.waiters.push({ seq: upTo, wake })).then(lost);
  }

  /** For tests: the next `n` batches roll back instead of committing. */
  injectCommitFailures(n: number): void {
    this.injected += n;
  }

  /** Refuses new writes and resolves once the queued ones are settled. */
  async close(): Promise<void> {
    this.closed = true;
    await this.idle;
  }
}

function lostWrites(): StorageError {
  return new StorageError("backend", "a commit failed: writes since were lost");
}
