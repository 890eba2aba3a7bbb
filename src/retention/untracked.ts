// The user's recent sessions that smart retention could not track, kept so
// that `mamkit retention --dry-run` (another process) can say why a client's
// deliveries count for nothing. Keyval store `mam_smart_retention_untracked`,
// per user: { sessions: [{ resource, at, reason, clientId? }] }, oldest first,
// at most KEEP of them.
//
// A session is written once at most: when it binds without a usable client id,
// or when it ends without having enabled stream management. Writes are
// buffered per user and go out together a second after the first one (and at
// unload), so a burst of reconnects costs one write. This record explains and
// decides nothing: a write that fails is logged and dropped.
import type { KeyValueStore } from "../storage/types.js";

export type UntrackedReason = "no-client-id" | "bad-client-id" | "no-stream-management";

export interface UntrackedSession {
  resource: string;
  /** When it was found untracked (bound, or ended), ms since the epoch. */
  at: number;
  reason: UntrackedReason;
  /** The user-agent id it gave, when it gave one that is no UUID. */
  clientId?: string;
}

export const UNTRACKED_REASONS: Record<UntrackedReason, string> = {
  "no-client-id": "no SASL2 user-agent id (legacy bind, or SASL2 without <user-agent id>)",
  "bad-client-id": "its SASL2 user-agent id is not a UUID",
  "no-stream-management": "it never enabled stream management (XEP-0198)",
};

export const KEEP = 5;
const FLUSH_DELAY_MS = 1000;

function decode(v: unknown): UntrackedSession[] {
  const list = (v as { sessions?: unknown } | undefined)?.sessions;
  if (!Array.isArray(list)) return [];
  return list.filter(
    (s): s is UntrackedSession =>
      typeof s === "object" && s !== null && typeof s.resource === "string" && typeof s.at === "number" && typeof s.reason === "string",
  );
}

export class UntrackedLog {
  private pending = new Map<string, UntrackedSession[]>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    readonly store: KeyValueStore,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Remembers a session found untracked (written within a second). */
  add(user: string, s: UntrackedSession): void {
    let list = this.pending.get(user);
    if (!list) {
      list = [];
      this.pending.set(user, list);
    }
    list.push(s);
    if (list.length > KEEP) list.shift();
    if (this.timer === undefined) {
      this.timer = setTimeout(() => void this.flush().catch(this.onError), FLUSH_DELAY_MS);
      this.timer.unref();
    }
  }

  /** The user's recent untracked sessions, oldest first (what is buffered included). */
  async recent(user: string): Promise<UntrackedSession[]> {
    const stored = decode(await this.store.get(user));
    return [...stored, ...(this.pending.get(user) ?? [])].sort((a, b) => a.at - b.at).slice(-KEEP);
  }

  async users(): Promise<string[]> {
    return [...new Set([...(await this.store.users()), ...this.pending.keys()])];
  }

  /** The account is being deleted: what is buffered for it is dropped, a write under way awaited (the purge removes the rest). */
  async forgetUser(user: string): Promise<void> {
    this.pending.delete(user);
    await this.flushing?.catch(() => undefined);
  }

  /** Writes what is buffered: per user, the stored list and the new sessions, the newest KEEP. */
  async flush(): Promise<void> {
    while (this.flushing !== undefined) await this.flushing.catch(() => undefined);
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const run = (async () => {
      for (const [user, added] of batch) {
        try {
          const sessions = [...decode(await this.store.get(user)), ...added].sort((a, b) => a.at - b.at).slice(-KEEP);
          await this.store.set(user, { sessions });
        } catch (err) {
          this.onError(err); // only an explanation is lost
        }
      }
    })();
    this.flushing = run;
    try {
      await run;
    } finally {
      this.flushing = undefined;
    }
  }
}
