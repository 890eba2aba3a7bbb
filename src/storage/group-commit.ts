// Group commit for the drivers that run their writes in-process (memory,
// SQLite): every write is applied at once, inside one open transaction (the
// batch), so that what a store call returns is visible to the next read; the
// batch commits at the end of the event loop's turn (or after
// `commitDelayMs`), or as soon as it holds `commitMaxWrites` writes. Durability
// is asked for separately (`durable`), which is what lets many stanzas share
// one commit.
//
// A transaction (`transaction(fn)`) runs inside the batch under a savepoint;
// while its body runs, writes from elsewhere wait (so that the savepoint holds
// only the body's writes), and the batch does not commit.
import { AsyncLocalStorage } from "node:async_hooks";
import { StorageError } from "./types.js";

/** What a driver gives the group commit: its transaction primitives (all synchronous). */
export interface CommitBackend {
  begin(): void;
  /**
   * Commits the batch; throws if it could not (the backend then rolled back
   * or must). May return a promise: the commit is done (visible, the next
   * batch may begin) but durable only once it resolves (an fsync running off
   * the event loop).
   */
  commit(): void | Promise<void>;
  rollback(): void;
  /** Whether the batch is still open (SQLite can roll back by itself on some errors). */
  inBatch(): boolean;
  /** Savepoints nest; a name may repeat (the innermost of that name is meant), as in SQL. */
  savepoint(name: string): void;
  release(name: string): void;
  rollbackTo(name: string): void;
}

export interface GroupCommitOptions {
  /** 0: commit at the end of the event loop's current turn; more: at most this many ms after the batch's first write. */
  commitDelayMs: number;
  /** A batch commits at once when it holds this many writes. */
  commitMaxWrites: number;
}

export const DEFAULT_GROUP_COMMIT: GroupCommitOptions = { commitDelayMs: 0, commitMaxWrites: 1000 };

/** Counts failed batches: `durable(mark)` rejects when one failed since `mark`. */
export type WriteMark = number;

interface Batch {
  readonly done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
  writes: number;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // a batch nobody waits on must not be an unhandled rejection
  done.catch(() => {});
  return { done, resolve, reject, writes: 0 };
}

/**
 * A transaction running, or one nested in it (its async context carries it).
 * Nested transactions of one holder run one after the other (`chain`):
 * savepoints are a stack, and two interleaved would release each other.
 */
interface Holder {
  readonly root: Holder | undefined;
  chain: Promise<unknown>;
}

export class GroupCommit {
  private batch: Batch | undefined;
  /** The newest committed batch's durability (pending while its sync runs). */
  private lastDone: Promise<void> | undefined;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private failures = 0;
  private injected = 0;
  private holder: Holder | undefined;
  private readonly waiting: (() => void)[] = [];
  private readonly context = new AsyncLocalStorage<Holder>();
  private closed = false;
  /** close() was called while a transaction ran: it closes when that ends. */
  private closing = false;

  constructor(
    private readonly backend: CommitBackend,
    private readonly opts: GroupCommitOptions = DEFAULT_GROUP_COMMIT,
    /** Called after a batch failed (the driver may need to repair state, e.g. positions). */
    private readonly onFailure: (err: unknown) => void = () => {},
  ) {}

  /** A mark for the writes issued from now on (see `durable`). */
  mark(): WriteMark {
    return this.failures;
  }

  /**
   * Resolves once every write applied before this call is durable or lost:
   * only a `mark` learns of a loss — with one, it rejects if a batch failed
   * since the mark was taken (a write made after it may have been lost).
   * Whoever must know that its writes are durable takes a mark before them.
   */
  durable(mark?: WriteMark): Promise<void> {
    if (this.holder !== undefined && this.inTransaction()) {
      // the batch cannot commit before the transaction ends: this would wait for itself
      return Promise.reject(new StorageError("backend", "durable() inside a transaction would wait for itself"));
    }
    if (mark !== undefined && this.failures > mark) return Promise.reject(lostWrites());
    const done = this.batch?.done ?? this.lastDone;
    if (done === undefined) return Promise.resolve();
    if (mark === undefined) return done;
    return done.then(() => (this.failures > mark ? Promise.reject(lostWrites()) : undefined));
  }

  /** Whether a batch is open (writes not yet durable). */
  get pending(): boolean {
    return this.batch !== undefined;
  }

  /**
   * Applies `fn` (synchronous writes) in the open batch, now, unless a
   * transaction of someone else is running (then once it finished). `fn` is
   * atomic: a savepoint undoes it if it throws, unless `single` says it is one
   * statement (atomic by itself).
   */
  write<T>(fn: () => T, single = false): Promise<T> {
    if (this.closed) return Promise.reject(new StorageError("backend", "the storage is closed"));
    if (this.holder !== undefined && !this.inTransaction()) {
      return new Promise<void>((r) => this.waiting.push(r)).then(() => this.write(fn, single));
    }
    try {
      return Promise.resolve(this.apply(fn, single));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private apply<T>(fn: () => T, single: boolean): T {
    const b = this.open();
    let result: T;
    if (single) {
      try {
        result = fn();
      } catch (err) {
        this.checkBatch(b, err);
        throw err;
      }
    } else {
      const sp = "w";
      this.backend.savepoint(sp);
      try {
        result = fn();
        this.backend.release(sp);
      } catch (err) {
        if (this.backend.inBatch()) {
          this.backend.rollbackTo(sp);
          this.backend.release(sp);
        }
        this.checkBatch(b, err);
        throw err;
      }
    }
    b.writes++;
    if (b.writes >= this.opts.commitMaxWrites && this.holder === undefined) this.commit();
    return result;
  }

  /**
   * Runs `fn` as one transaction: its writes all commit or none does. Resolves
   * with its result once they are durable. Nested calls join the outer one.
   */
  async transaction<T>(fn: () => T | Promise<T>): Promise<T> {
    const outer = this.context.getStore();
    // (nested ones first: a transaction running when close() came finishes whole)
    if (outer !== undefined && this.holder !== undefined && (outer.root ?? outer) === this.holder) return this.nested(outer, fn);
    if (this.closed || this.closing) throw new StorageError("backend", "the storage is closed");
    while (this.holder !== undefined) await new Promise<void>((r) => this.waiting.push(r));
    if (this.closed || this.closing) throw new StorageError("backend", "the storage is closed");
    const mark = this.mark();
    const holder: Holder = { root: undefined, chain: Promise.resolve() };
    this.holder = holder;
    let result: T;
    try {
      result = await this.inSavepoint(holder, fn);
    } finally {
      this.holder = undefined;
      for (const wake of this.waiting.splice(0)) wake();
      if (this.closing) this.close();
      else if (this.batch !== undefined) this.schedule(this.batch);
    }
    await this.durable(mark);
    return result;
  }

  /** Whether the caller runs inside the transaction holding the batch now. */
  private inTransaction(): boolean {
    const ctx = this.context.getStore();
    return ctx !== undefined && (ctx.root ?? ctx) === this.holder;
  }

  /** A transaction inside `parent`'s: after the ones before it in `parent`, in a savepoint of its own. */
  private nested<T>(parent: Holder, fn: () => T | Promise<T>): Promise<T> {
    const child: Holder = { root: parent.root ?? parent, chain: Promise.resolve() };
    const run = parent.chain.then(() => this.inSavepoint(child, fn));
    parent.chain = run.catch(() => undefined);
    return run;
  }

  private async inSavepoint<T>(holder: Holder, fn: () => T | Promise<T>): Promise<T> {
    const b = this.open();
    const sp = "t";
    this.backend.savepoint(sp);
    try {
      const r = await this.context.run(holder, fn);
      await holder.chain; // nested transactions it started and did not wait for
      if (this.batch !== b) throw lostWrites();
      this.backend.release(sp);
      return r;
    } catch (err) {
      if (this.batch === b && this.backend.inBatch()) {
        this.backend.rollbackTo(sp);
        this.backend.release(sp);
      }
      throw err;
    }
  }

  private open(): Batch {
    if (this.batch !== undefined) return this.batch;
    this.backend.begin();
    const b = newBatch();
    this.batch = b;
    this.schedule(b);
    return b;
  }

  private schedule(b: Batch): void {
    if (this.timer !== undefined || this.batch !== b) return;
    const run = () => {
      this.timer = undefined;
      if (this.batch === b) this.commit();
    };
    this.timer = this.opts.commitDelayMs > 0 ? setTimeout(run, this.opts.commitDelayMs) : setImmediate(run);
  }

  private clearTimer(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer as NodeJS.Timeout);
    clearImmediate(this.timer as NodeJS.Immediate);
    this.timer = undefined;
  }

  /** Commits the open batch now (not while a transaction runs: then when it ends). */
  commit(): void {
    const b = this.batch;
    if (b === undefined || this.holder !== undefined) return;
    this.clearTimer();
    this.batch = undefined;
    let syncing: void | Promise<void>;
    try {
      if (this.injected > 0) {
        this.injected--;
        throw new StorageError("backend", "injected commit failure");
      }
      syncing = this.backend.commit();
    } catch (err) {
      if (this.backend.inBatch()) this.backend.rollback();
      this.fail(b, err);
      return;
    }
    // durable once its own sync is done and every batch before it is durable
    const before = this.lastDone;
    this.lastDone = b.done;
    if (syncing === undefined && before === undefined) {
      b.resolve();
      return;
    }
    // A batch before it whose sync failed fails it too, and so every later one: after a failed
    // sync the OS may have dropped pages of the WAL, and nothing written after them replays
    // (rolled-back batches never become lastDone, so they do not count here)
    Promise.all([before, syncing]).then(
      () => b.resolve(),
      (err: unknown) => this.fail(b, err),
    );
  }

  private checkBatch(b: Batch, err: unknown): void {
    // the backend rolled the whole batch back by itself: everything in it is lost
    if (this.batch === b && !this.backend.inBatch()) {
      this.batch = undefined;
      this.clearTimer();
      this.fail(b, err);
    }
  }

  private fail(b: Batch, err: unknown): void {
    this.failures++;
    const e = err instanceof StorageError ? err : new StorageError("backend", `commit failed: ${(err as Error)?.message ?? err}`, { cause: err });
    this.onFailure(e);
    b.reject(e);
  }

  /** For tests: the next `n` commits fail (and roll back) as a full disk would make them. */
  injectCommitFailures(n: number): void {
    this.injected += n;
  }

  /**
   * Commits what is pending; later writes are refused. While a transaction
   * runs, it closes once the transaction is over (never half of one).
   */
  close(): void {
    if (this.closed) return;
    if (this.holder !== undefined) {
      this.closing = true;
      return;
    }
    this.commit();
    this.closed = true;
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** Resolves once closed (after a running transaction) and what was committed is durable. */
  async closeAndSettle(): Promise<void> {
    this.close();
    while (!this.closed) await new Promise<void>((r) => this.waiting.push(r));
    await this.durable().catch(() => undefined);
  }
}

/** The part of a driver that is its group commit: transactions, marks, durability, fault injection. */
export abstract class GroupCommitted {
  abstract readonly writes: GroupCommit;

  transaction<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.writes.transaction(fn);
  }

  mark(): number {
    return this.writes.mark();
  }

  durable(mark?: number): Promise<void> {
    return this.writes.durable(mark);
  }

  /** For tests: the next `n` commits fail and roll back. */
  injectCommitFailures(n: number): void {
    this.writes.injectCommitFailures(n);
  }
}

function lostWrites(): StorageError {
  return new StorageError("backend", "a commit failed: writes since were lost");
}
