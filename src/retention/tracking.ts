// Per (user, client id) delivery records, in the map store
// `mam_smart_retention` (key = client id): the positions the client
// acknowledged as intervals, the newest archive position when the client was
// first seen, and when it was last seen.
//
// Writes are buffered and go out in one transaction at most FLUSH_DELAY_MS
// after the first change (sooner once MAX_DIRTY records wait), before every
// cleanup, and at unload. Two things must never be lost, because losing them
// could delete a message: a new client's record (its first-seen position: a
// record made again later would say "first seen" later, and what came between
// would not wait for it under `all`), and a client's last-seen time (rolled
// back, a client could look expired). So a new client is written at once; a
// write that fails is kept buffered and tried again (a cleanup does not start
// while it fails); and a cleanup's save merges with whatever was written or
// buffered while it ran instead of overwriting it. Losing acknowledgements in a
// crash only keeps messages longer.
import type { MapStore, StorageDriver } from "../storage/types.js";

/** What tracking needs of the storage: one transaction wrapper. */
export type Transactions = Pick<StorageDriver, "transaction">;
import { type Interval, IntervalSet } from "./intervals.js";

export interface ClientRecord {
  delivered: IntervalSet;
  /** Newest archive position when the client was first seen (0: empty archive). */
  firstSeen: number;
  /** Milliseconds since the epoch. */
  lastSeen: number;
}

interface Stored {
  delivered: Interval[];
  firstSeen: number;
  lastSeen: number;
}

const FLUSH_DELAY_MS = 1000;
const MAX_DIRTY = 1000;

function decode(v: unknown): ClientRecord | undefined {
  const s = v as Partial<Stored> | undefined;
  if (!s || !Array.isArray(s.delivered)) return undefined;
  return {
    delivered: new IntervalSet(s.delivered.filter((iv) => Array.isArray(iv) && iv.length === 2) as Interval[]),
    firstSeen: Number(s.firstSeen) || 0,
    lastSeen: Number(s.lastSeen) || 0,
  };
}

function encode(r: ClientRecord): Stored {
  return { delivered: r.delivered.toJSON(), firstSeen: r.firstSeen, lastSeen: r.lastSeen };
}

function copy(r: ClientRecord): ClientRecord {
  return { delivered: new IntervalSet(r.delivered.intervals), firstSeen: r.firstSeen, lastSeen: r.lastSeen };
}

/** Everything either record knows: union of deliveries, earliest first-seen, latest last-seen. */
function merge(a: ClientRecord, b: ClientRecord | undefined): ClientRecord {
  if (!b) return a;
  return { delivered: a.delivered.union(b.delivered), firstSeen: Math.min(a.firstSeen, b.firstSeen), lastSeen: Math.max(a.lastSeen, b.lastSeen) };
}

export class Tracker {
  private readonly dirty = new Map<string, Map<string, ClientRecord>>();
  private dirtyCount = 0;
  private readonly forgotten = new Map<string, number>();
  /** Records made without reading the stored one (the read failed): merged with it when written. */
  private readonly unsure = new Map<string, Set<string>>();
  private scheduled: NodeJS.Timeout | undefined;

  constructor(
    readonly store: MapStore,
    private readonly driver: Transactions,
    private readonly onError: (err: unknown) => void,
    /** The newest archive position of a user: a new client's first-seen position. */
    private readonly newest: (user: string) => number,
  ) {}

  /** A snapshot of every client of a user, buffered changes included (copies: later changes do not show). */
  load(user: string): Map<string, ClientRecord> {
    const out = new Map<string, ClientRecord>();
    for (const [client, v] of Object.entries(this.store.getAll(user) ?? {})) {
      const r = decode(v);
      if (r) out.set(client, r);
    }
    for (const [client, rec] of this.dirty.get(user) ?? []) out.set(client, copy(rec));
    return out;
  }

  private readOrUndefined(user: string, client: string): ClientRecord | undefined {
    try {
      return decode(this.store.get(user, client));
    } catch (err) {
      this.onError(err);
      return undefined;
    }
  }

  private record(user: string, client: string): ClientRecord | undefined {
    return this.dirty.get(user)?.get(client) ?? decode(this.store.get(user, client));
  }

  private touch(user: string, client: string, rec: ClientRecord): void {
    let m = this.dirty.get(user);
    if (!m) {
      m = new Map();
      this.dirty.set(user, m);
    }
    if (!m.has(client)) this.dirtyCount++;
    m.set(client, rec);
    if (this.dirtyCount >= MAX_DIRTY) this.flushSafely();
    else this.schedule();
  }

  private schedule(): void {
    if (this.scheduled !== undefined || this.dirtyCount === 0) return;
    this.scheduled = setTimeout(() => this.flushSafely(), FLUSH_DELAY_MS);
    this.scheduled.unref();
  }

  private flushSafely(): void {
    try {
      this.flush();
    } catch (err) {
      this.onError(err);
      this.schedule(); // still buffered: try again
    }
  }

  /** The client was seen; a new client records the newest archive position as its first-seen one. */
  seen(user: string, client: string, now: number): void {
    this.update(user, client, now, undefined, undefined);
  }

  /** The client acknowledged positions a..b. */
  delivered(user: string, client: string, a: number, b: number, now: number): void {
    this.update(user, client, now, a, b);
  }

  /** Updates the record of (user, client), made (and written at once) if the client is new. */
  private update(user: string, client: string, now: number, a: number | undefined, b: number | undefined): void {
    let existing: ClientRecord | undefined;
    let rec: ClientRecord;
    try {
      existing = this.record(user, client);
      rec = existing ?? { delivered: new IntervalSet(), firstSeen: this.newest(user), lastSeen: now };
    } catch (err) {
      // Could not read: record what is surely true — first seen no later than the
      // start of the archive — and merge it with the stored record when writing.
      this.onError(err);
      rec = { delivered: new IntervalSet(), firstSeen: 0, lastSeen: now };
      let m = this.unsure.get(user);
      if (!m) {
        m = new Set();
        this.unsure.set(user, m);
      }
      m.add(client);
    }
    if (a !== undefined && b !== undefined) rec.delivered.add(a, b);
    rec.lastSeen = Math.max(rec.lastSeen, now);
    this.touch(user, client, rec);
    if (!existing) this.flushSafely();
  }

  /** Writes buffered changes (one transaction). On failure they stay buffered, and the error is thrown. */
  flush(): void {
    if (this.scheduled !== undefined) {
      clearTimeout(this.scheduled);
      this.scheduled = undefined;
    }
    if (this.dirty.size === 0) return;
    const batch = [...this.dirty];
    this.driver.transaction(() => {
      for (const [user, clients] of batch) {
        const data: Record<string, Stored> = {};
        const unsure = this.unsure.get(user);
        for (const [client, r] of clients) {
          // made without reading the stored record: merge with it now (unreadable still: this
          // record alone is safe to write — first seen 0, seen now; lost deliveries only keep more)
          data[client] = encode(unsure?.has(client) ? merge(r, this.readOrUndefined(user, client)) : r);
        }
        this.store.setKeys(user, data);
      }
    });
    // written: synchronous since the snapshot above, so nothing changed meanwhile
    this.dirty.clear();
    this.dirtyCount = 0;
    this.unsure.clear();
  }

  /**
   * Writes a user's records after a cleanup (call it inside the cleanup's
   * last transaction): `next` maps each client to its new record (compacted),
   * or to undefined to forget it; `before` is the snapshot the cleanup
   * decided on. What was recorded since — written by a flush or still
   * buffered — is merged in, not overwritten; a client to be forgotten that
   * was seen again meanwhile is kept. Returns what to call once the
   * transaction committed (it drops the buffered changes now written).
   */
  save(user: string, next: Map<string, ClientRecord | undefined>, before: Map<string, ClientRecord>): () => void {
    const data: Record<string, Stored | undefined> = {};
    const pending = this.dirty.get(user);
    for (const [client, r] of next) {
      const stored = decode(this.store.get(user, client));
      const buffered = pending?.get(client);
      const current = stored && buffered ? merge(stored, buffered) : (buffered ?? stored);
      if (r === undefined) {
        const was = before.get(client);
        const seenAgain = current !== undefined && (was === undefined || current.lastSeen > was.lastSeen);
        data[client] = seenAgain ? encode(current) : undefined;
      } else {
        data[client] = encode(merge(r, current));
      }
    }
    this.store.setKeys(user, data);
    return () => {
      const m = this.dirty.get(user);
      if (!m) return;
      for (const client of next.keys()) {
        if (m.delete(client)) this.dirtyCount--;
        this.unsure.get(user)?.delete(client); // save() merged with the stored record
      }
      if (m.size === 0) this.dirty.delete(user);
    };
  }

  /**
   * The account is being deleted (`user-deleted`, fired before the data is
   * purged): a cleanup already running must not save for it. What is buffered
   * is written first, so that it is purged with the rest — or, should the purge
   * fail and the account stay, still there. If it cannot be written it stays
   * buffered; written after a purge, it only makes clients of a re-created
   * account block deletion longer.
   */
  forgetUser(user: string): void {
    this.forgotten.set(user, this.generation(user) + 1);
    this.flushSafely();
  }

  /** Changes when the user's tracking is forgotten (account deleted): a cleanup begun before must not save. */
  generation(user: string): number {
    return this.forgotten.get(user) ?? 0;
  }

  users(): string[] {
    return [...new Set([...this.store.users(), ...this.dirty.keys()])];
  }
}
