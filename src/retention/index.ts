// mod_mam_smart_retention: archived messages are removed early once the
// server knows — from XEP-0198 acks, per client identified by its SASL2
// user-agent id — that they reached one (or all) of the user's clients.
//
// The invariant: a message is deleted early only if it was delivered, with a
// stream-management acknowledgement, to the clients the strategy requires.
import type { Element } from "@xmpp/xml";
import { HostError } from "../core/errors.js";
import { defineModule } from "../core/module.js";
import { DAILY } from "../core/scheduler.js";
import { type ArchiveMessageAdded, type ArchiveQueryEvent, archivedOf, MAM_OPTIONS } from "../mam/index.js";
import { addCheckpoint, smState, watchDelivery } from "../smacks/index.js";
import { isClientId, type Session } from "../core/session.js";
import { IntervalSet } from "./intervals.js";
import { cleanupSweep, type CleanupOptions, type CleanupReport } from "./cleanup.js";
import { Tracker } from "./tracking.js";
import { UntrackedLog } from "./untracked.js";

export type { CleanupOptions, CleanupReport, ClientReport, UserReport } from "./cleanup.js";
export type { Explanation, MessageRef, Reason, Run } from "./explain.js";
export type { UntrackedReason, UntrackedSession } from "./untracked.js";


declare module "../core/event-payloads.js" {
  interface EventPayloads {
    /** Runs a cleanup now (the CLI's `retention run`); resolves with its report. */
    "smart-retention-run": CleanupOptions | undefined;
    /** A cleanup finished. */
    "smart-retention-cleanup": CleanupReport;
  }
}

/** How long a cleanup waits for every node to write its tracking (then it does not run). */
const BARRIER_TIMEOUT_MS = 10_000;

export default defineModule(
  "mam_smart_retention",
  (module) => {
    module.dependsOn("smacks");
    module.dependsOn("mam");
    const host = module.hostView;
    const {
      smart_retention_strategy: strategy,
      smart_retention_min: minAge,
      smart_retention_schedule: schedule,
      smart_retention_batch_size: batchSize,
    } = module.options;
    // a client unseen for as long as messages are kept is forgotten, unless told otherwise
    const clientExpiry =
      module.options.smart_retention_client_expiry ?? module.readOption("archive_expires_after", MAM_OPTIONS.archive_expires_after);

    const archive = module.openStore("archive", "archive");
    if (!archive.caps.stablePositions) {
      throw new HostError(
        "MAMKIT_ERR_STORAGE",
        "mam_smart_retention: this archive can give a position out again (SQLite: prosodyarchive.sort_id is not AUTOINCREMENT, unlike Prosody's schema), so a delivery record could come to cover a message never delivered; recreate the table with Prosody's schema, or leave the module off",
      );
    }
    const storage = {
      transaction: <T>(fn: () => T | Promise<T>): Promise<T> => module.transaction(fn),
      mark: () => module.writeMark(),
      durable: (mark?: number) => module.durable(mark),
    };
    const onError = (err: unknown) => module.log.error({ err }, "could not save delivery tracking");
    const tracker = new Tracker(
      module.openStore("mam_smart_retention", "map"),
      storage,
      onError,
      async (user) => (await archive.summary(user)).last?.pos ?? 0,
      module.cluster.shared,
    );

    // Archive positions are global, so one user's items lie far apart. A delivery
    // of `pos` whose predecessor in the user's archive is `prev` is recorded as
    // [prev + 1, pos]: the positions between hold none of the user's items, now or
    // later, so this says exactly the same, and live deliveries extend one interval
    // instead of adding one each.
    function runStart(pos: number, prev: number | undefined): number {
      return prev !== undefined && prev < pos ? prev + 1 : pos;
    }

    // The (user, client) of each tracked session: stream management and a valid client id.
    // Decided once, when stream management is enabled (it stays on, across resumptions).
    const identities = new WeakMap<Session, { user: string; client: string }>();
    /** Tracked sessions that may still be bound (pruned at each barrier, and at unbind). */
    const trackedSessions = new Set<Session>();
    function tracked(session: Session | undefined): { user: string; client: string } | undefined {
      return session === undefined ? undefined : identities.get(session);
    }

    // A session that enabled stream management: seen now, and its queue watched.
    module.hook("smacks-enabled", ({ session }: { session: Session }) => {
      if (!session.jid || !isClientId(session.clientId) || !smState(session)) return undefined;
      const t = { user: session.jid.local!, client: session.clientId.toLowerCase() };
      identities.set(session, t);
      trackedSessions.add(session);
      tracker.seen(t.user, t.client, module.clock.now()).catch(onError);
      watchDelivery(session, (stanza: Element) => {
        const a = archivedOf(stanza);
        // an archive position of this user's archive on this host, nobody else's
        if (a === undefined || a.user !== t.user || a.host !== host.name) return undefined;
        const { pos } = a;
        const from = runStart(pos, a.prev);
        // runs once the client acknowledged this stanza
        return () => void tracker.delivered(t.user, t.client, from, pos, module.clock.now()).catch(onError);
      });
      return undefined;
    });

    // A resumed session: seen again.
    module.hook("smacks-hibernation-end", ({ session, resumed }: { session: Session; resumed: boolean }) => {
      const t = resumed ? tracked(session) : undefined;
      if (t) tracker.seen(t.user, t.client, module.clock.now()).catch(onError);
      return undefined;
    });

    // MAM pages: a checkpoint right after the last result (before <fin/>).
    module.hook("archive-query", (e: ArchiveQueryEvent) => {
      const t = tracked(e.origin);
      if (!t || e.items.length === 0) return undefined;
      const positions = e.items.map((i) => i.pos);
      addCheckpoint(e.origin, () => {
        const now = module.clock.now();
        if (e.filtered) {
          for (const p of positions) tracker.delivered(t.user, t.client, p, p, now).catch(onError);
        } else {
          // an unfiltered page is a contiguous run of the archive
          tracker.delivered(t.user, t.client, Math.min(...positions), Math.max(...positions), now).catch(onError);
        }
      });
      return undefined;
    });

    // What a client sent itself, it has.
    module.hook("archive-message-added", (e: ArchiveMessageAdded) => {
      if (e.direction !== "outgoing") return undefined;
      const t = tracked(e.origin);
      if (t && t.user === e.user) tracker.delivered(t.user, t.client, runStart(e.pos, e.prev), e.pos, module.clock.now()).catch(onError);
      return undefined;
    });

    // Sessions that cannot be tracked, remembered for `mamkit retention --dry-run` (untracked.ts):
    // one without a usable client id when it binds, one with an id but no stream management when it ends.
    const untracked = new UntrackedLog(module.openStore("mam_smart_retention_untracked", "keyval"), (err: unknown) =>
      module.log.warn({ err }, "could not save the list of untracked sessions"),
    );
    module.hook("resource-bind", ({ session }: { session: Session }) => {
      const jid = session.jid;
      if (!jid?.local || jid.resource === undefined || isClientId(session.clientId)) return undefined;
      untracked.add(jid.local, {
        resource: jid.resource,
        at: module.clock.now(),
        ...(session.clientId === undefined ? { reason: "no-client-id" } : { reason: "bad-client-id", clientId: session.clientId }),
      });
      return undefined;
    });
    module.hook("resource-unbind", ({ session }: { session: Session }) => {
      trackedSessions.delete(session);
      const jid = session.jid;
      if (!jid?.local || jid.resource === undefined || !isClientId(session.clientId) || tracked(session)) return undefined;
      untracked.add(jid.local, { resource: jid.resource, at: module.clock.now(), reason: "no-stream-management" });
      return undefined;
    });

    module.hook("user-deleted", async ({ username }: { username: string }) => {
      await untracked.forgetUser(username);
      await tracker.forgetUser(username);
      return undefined;
    });

    // ---- cleanup (cleanup.ts) -------------------------------------------------------------
    const run = cleanupSweep({
      host,
      archive,
      tracker,
      storage,
      tracked,
      strategy,
      minAge,
      clientExpiry,
      batchSize,
      untracked,
      now: () => module.clock.now(),
      log: module.log,
      cleaned: (report) => module.fire("smart-retention-cleanup", report),
    });

    // ---- several nodes on one database (docs/storage.md, "Several nodes") ---------------------
    // One node at a time cleans up a host. Before it decides anything, every node writes what
    // it knows: its connected clients are seen now, and its buffered tracking is flushed, so
    // that no deletion rests on tracking some node has not written yet. A node that does not
    // answer in time stops the cleanup (it runs again at the next schedule).
    const flushTopic = `smart-retention-flush:${host.name}`;
    const stopAnswering = module.cluster.onBarrier(flushTopic, async () => {
      const now = module.clock.now();
      for (const s of trackedSessions) {
        const t = tracked(s);
        // still bound (or hibernating, resumable): seen now; gone: forgotten here
        if (t && [...(host.sessionsOf(t.user)?.values() ?? [])].includes(s)) await tracker.seen(t.user, t.client, now);
        else trackedSessions.delete(s);
      }
      await tracker.flush();
    });
    module.onUnload(stopAnswering);
    async function everyNodeFlushed(): Promise<void> {
      for (let attempt = 0; attempt < 2; attempt++) {
        if (await module.cluster.barrier(flushTopic, BARRIER_TIMEOUT_MS)) return;
      }
      throw new Error("another node did not write its delivery tracking in time: nothing deleted");
    }
    async function runAlone(opts: CleanupOptions, wait: boolean): Promise<CleanupReport | undefined> {
      const r = await module.cluster.exclusive(`smart-retention:${host.name}`, wait, async () => {
        await everyNodeFlushed();
        return run(opts);
      });
      return r.ran ? r.value : undefined;
    }

    module.cron("smart retention cleanup", schedule, async () => {
      if ((await runAlone({}, false)) === undefined) module.log.debug("another node is cleaning up this host: skipped");
    });
    // for the CLI and embedders: fire("smart-retention-run", options) → Promise<CleanupReport>
    // (a dry run deletes nothing: it need not wait for the node cleaning up, if one is)
    // (calls while one runs here join it, as the sweep's own runs do)
    let manual: Promise<CleanupReport> | undefined;
    module.hook("smart-retention-run", (opts: CleanupOptions | undefined) => {
      if (opts?.dryRun) return run(opts);
      manual ??= runAlone(opts ?? {}, true)
        .then((r) => r as CleanupReport)
        .finally(() => {
          manual = undefined;
        });
      return manual;
    });
    module.onUnload(() =>
      Promise.all([
        tracker.flush().catch((err: unknown) => module.log.error({ err }, "could not save delivery tracking at unload")),
        untracked.flush().catch((err: unknown) => module.log.warn({ err }, "could not save the list of untracked sessions at unload")),
      ]).then(() => undefined),
    );
  },
  {
    options: {
      smart_retention_strategy: { type: "enum", values: ["one", "all"], default: "one" },
      smart_retention_min: { type: "period", default: 0 },
      smart_retention_schedule: { type: "cron", default: DAILY },
      smart_retention_client_expiry: { type: "period" },
      smart_retention_batch_size: { type: "number", min: 1, integer: true, default: 1000 },
    },
  },
);

export { IntervalSet };
