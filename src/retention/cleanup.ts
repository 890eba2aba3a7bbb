// The cleanup sweep of smart retention: per user, what the strategy allows is
// deleted in batches of one transaction each (the last one also saves the
// compacted tracking), never two sweeps at once, the server serving between
// batches. A failure part-way is reported with what was deleted until then.
import type { Logger } from "../core/logger.js";
import type { HostView } from "../core/module.js";
import type { Session } from "../core/session.js";
import type { ArchiveStore } from "../storage/types.js";
import { type Explanation, explain } from "./explain.js";
import { decide, type Strategy } from "./policy.js";
import type { ClientRecord, Tracker, Transactions } from "./tracking.js";
import type { UntrackedLog } from "./untracked.js";

export interface CleanupOptions {
  dryRun?: boolean;
  /** Only this user (localpart). */
  user?: string;
  /** Called after each user: done, total. */
  progress?: (done: number, total: number) => void;
  /**
   * Forget no client for not being seen (smart_retention_client_expiry). For a
   * cleanup from another process (the CLI), which cannot see which clients are
   * connected to a running server: one connected but idle would look expired.
   */
  keepClients?: boolean;
  /**
   * With dryRun: explain every message of each user (UserReport.explanation),
   * and report users known only for untracked sessions too. Reads the whole
   * archive of each user: for the CLI, not for a schedule.
   */
  explain?: boolean;
}

export interface ClientReport {
  client: string;
  /** Positions acknowledged by this client (intervals). */
  delivered: readonly (readonly [number, number])[];
  firstSeen: number;
  lastSeen: number;
  expired: boolean;
}

export interface UserReport {
  user: string;
  clients: ClientReport[];
  /** Messages deleted (or, in a dry run, that would be). */
  deleted: number;
  error?: string;
  /** With `explain` (dry run): why each message would go or stay. */
  explanation?: Explanation;
}

export interface CleanupReport {
  host: string;
  strategy: Strategy;
  /** smart_retention_min, seconds (0: none). */
  minAge: number;
  dryRun: boolean;
  deleted: number;
  users: UserReport[];
  ms: number;
}

export interface SweepContext {
  host: HostView;
  archive: ArchiveStore;
  tracker: Tracker;
  storage: Transactions;
  /** The (user, client) a session is tracked as, if it is. */
  tracked(session: Session | undefined): { user: string; client: string } | undefined;
  strategy: Strategy;
  /** smart_retention_min, seconds. */
  minAge: number;
  /** smart_retention_client_expiry (or archive_expires_after), seconds. */
  clientExpiry: number;
  batchSize: number;
  /** Sessions that could not be tracked, for explanations. */
  untracked?: UntrackedLog;
  now(): number;
  log: Logger;
  /** A sweep that deleted (not a dry run) finished. */
  cleaned(report: CleanupReport): void;
}

/** The sweep of a host: `run(options)` runs one, or joins the one running. */
export function cleanupSweep(c: SweepContext): (opts?: CleanupOptions) => Promise<CleanupReport> {
  const { host, archive, tracker, storage, tracked, strategy, minAge, clientExpiry, batchSize } = c;
  let running: Promise<CleanupReport> | undefined;

  /** Fills `report` as it goes, so that a failure part-way still reports what was deleted. */
  async function cleanupUser(user: string, now: number, opts: CleanupOptions, report: UserReport): Promise<void> {
    const dryRun = opts.dryRun === true;
    const keepClients = opts.keepClients === true;
    const generation = tracker.generation(user);
    // A client connected now (or hibernating, resumable) is seen now, however long ago it last
    // acknowledged a message: one that receives nothing for a while must not look expired.
    for (const s of host.sessionsOf(user)?.values() ?? []) {
      const t = tracked(s);
      if (t) await tracker.seen(t.user, t.client, now);
    }
    const records = await tracker.load(user);
    const d = decide(records, strategy, now, keepClients ? Number.POSITIVE_INFINITY : clientExpiry * 1000);
    report.clients = [...records].map(([client, r]) => ({
      client,
      delivered: r.delivered.toJSON(),
      firstSeen: r.firstSeen,
      lastSeen: r.lastSeen,
      expired: d.expired.includes(client),
    }));
    // strictly older than smart_retention_min (no minimum: no age limit)
    // (the archive keeps whole seconds, rounded down: a message stored at second s may be
    // up to 999 ms younger, so s must lie a whole second before the limit)
    const end = minAge > 0 ? now - minAge * 1000 - 1000 : undefined;
    const intervals = d.deletable.intervals;
    if (dryRun) {
      if (opts.explain) {
        const untracked = (await c.untracked?.recent(user)) ?? [];
        report.explanation = await explain({ archive, user, records, decision: d, strategy, end, untracked });
      }
      for (const [a, b] of intervals) {
        // (a total would count the whole archive: totals ignore position bounds)
        const q = { afterPos: a - 1, beforePos: b + 1 };
        report.deleted += (await archive.find(user, end === undefined ? q : { ...q, end })).items.length;
      }
      return;
    }
    let settle: (() => void) | undefined;
    const saveTracking = async () => {
      // an account deleted while its cleanup ran keeps no tracking
      if (tracker.generation(user) !== generation) return;
      const next = new Map<string, ClientRecord | undefined>();
      for (const c of d.expired) next.set(c, undefined);
      for (const c of d.active) {
        const r = records.get(c)!;
        // close gaps that hold no archived message any more
        await r.delivered.compactAsync(
          async (after, before) => (await archive.find(user, { afterPos: after, beforePos: before, limit: 1 })).items.length === 0,
        );
        next.set(c, r);
      }
      settle = await tracker.save(user, next, records);
    };
    // A batch is one transaction deleting at most batchSize rows (across intervals);
    // the last one also saves the user's compacted tracking, so a user with few
    // messages costs one commit. The server keeps serving between batches.
    let i = 0;
    let done = false;
    while (!done) {
      await storage.transaction(async () => {
        let budget = batchSize;
        while (i < intervals.length && budget > 0) {
          const [a, b] = intervals[i]!;
          const n = await archive.delete(user, end === undefined ? { fromPos: a, toPos: b, limit: budget } : { fromPos: a, toPos: b, end, limit: budget });
          report.deleted += n;
          if (n < budget) i++; // this interval is done (or may hold more: looked at again next batch)
          budget -= n;
        }
        if (i >= intervals.length) {
          await saveTracking();
          done = true;
        }
      });
      if (!done) await new Promise((r) => setImmediate(r));
    }
    settle?.(); // committed (the transaction resolves once durable)
  }

  async function cleanup(opts: CleanupOptions = {}): Promise<CleanupReport> {
    const started = Date.now();
    const now = c.now();
    await tracker.flush();
    let users = opts.user !== undefined ? [opts.user] : await tracker.users();
    if (opts.user === undefined && opts.dryRun && opts.explain && c.untracked) {
      // (explained users: also those with untracked sessions only, in a stable order)
      users = [...new Set([...users, ...(await c.untracked.users())])].sort();
    }
    const report: CleanupReport = { host: host.name, strategy, minAge, dryRun: opts.dryRun === true, deleted: 0, users: [], ms: 0 };
    let done = 0;
    for (const user of users) {
      const r: UserReport = { user, clients: [], deleted: 0 };
      try {
        await cleanupUser(user, now, opts, r);
      } catch (err) {
        c.log.error({ err, user }, "smart retention cleanup failed for a user; going on");
        r.error = (err as Error).message;
      }
      report.users.push(r);
      report.deleted += r.deleted;
      opts.progress?.(++done, users.length);
      await new Promise((r) => setImmediate(r));
    }
    report.ms = Date.now() - started;
    const touched = report.users.filter((u) => u.deleted > 0).length;
    if (!report.dryRun) {
      c.log.info(
        { deleted: report.deleted, users: touched, ms: report.ms },
        `expired ${report.deleted} delivered messages for ${touched} users in ${report.ms} ms`,
      );
      c.cleaned(report);
    }
    return report;
  }

  /** Runs a cleanup, or joins the one running: never two at once. */
  function run(opts: CleanupOptions = {}): Promise<CleanupReport> {
    if (opts.dryRun) return cleanup(opts);
    running ??= cleanup(opts).finally(() => {
      running = undefined;
    });
    return running;
  }

  return run;
}
