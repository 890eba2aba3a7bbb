// Per (user, client id) delivery records, in the map store
// `mam_smart_retention` (key = client id): the positions the client
// acknowledged as intervals, the newest archive position when the client was
// first seen, and when it was last seen. Updates are buffered and written in
// one transaction at most FLUSH_DELAY_MS after the first of them (sooner once
// MAX_DIRTY records wait), at a cleanup, and at unload: a few writes a second
// however many messages are acknowledged. A crash loses at most that last
// second of tracking, which can only keep messages longer, never delete one.
import type { MapStore, StorageDriver } from "../storage/types.js";
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

export class Tracker {
  private readonly dirty = new Map<string, Map<string, ClientRecord>>();
  private dirtyCount = 0;
  private scheduled: NodeJS.Timeout | undefined;

  constructor(
    readonly store: MapStore,
    private readonly driver: StorageDriver,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Every client of a user, buffered changes included. */
  load(user: string): Map<string, ClientRecord> {
    const out = new Map<string, ClientRecord>();
    const all = this.store.getAll(user) ?? {};
    for (const [client, v] of Object.entries(all)) {
      const s = v as Partial<Stored>;
      if (!s || !Array.isArray(s.delivered)) continue;
      out.set(client, {
        delivered: new IntervalSet(s.delivered.filter((iv) => Array.isArray(iv) && iv.length === 2) as Interval[]),
        firstSeen: Number(s.firstSeen) || 0,
        lastSeen: Number(s.lastSeen) || 0,
      });
    }
    for (const [client, rec] of this.dirty.get(user) ?? []) out.set(client, rec);
    return out;
  }

  private record(user: string, client: string): ClientRecord | undefined {
    const d = this.dirty.get(user)?.get(client);
    if (d) return d;
    const s = this.store.get(user, client) as Partial<Stored> | undefined;
    if (!s || !Array.isArray(s.delivered)) return undefined;
    return { delivered: new IntervalSet(s.delivered as Interval[]), firstSeen: Number(s.firstSeen) || 0, lastSeen: Number(s.lastSeen) || 0 };
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
    else if (this.scheduled === undefined) {
      this.scheduled = setTimeout(() => this.flushSafely(), FLUSH_DELAY_MS);
      this.scheduled.unref();
    }
  }

  private flushSafely(): void {
    try {
      this.flush();
    } catch (err) {
      this.onError(err);
    }
  }

  /** The client was seen; a new client records `newest` as its first-seen position. */
  seen(user: string, client: string, now: number, newest: () => number): void {
    const rec = this.record(user, client) ?? { delivered: new IntervalSet(), firstSeen: newest(), lastSeen: now };
    rec.lastSeen = now;
    this.touch(user, client, rec);
  }

  /** The client acknowledged positions a..b. */
  delivered(user: string, client: string, a: number, b: number, now: number, newest: () => number): void {
    const rec = this.record(user, client) ?? { delivered: new IntervalSet(), firstSeen: newest(), lastSeen: now };
    rec.delivered.add(a, b);
    rec.lastSeen = Math.max(rec.lastSeen, now);
    this.touch(user, client, rec);
  }

  /** Writes buffered changes (one transaction). */
  flush(): void {
    if (this.scheduled !== undefined) {
      clearTimeout(this.scheduled);
      this.scheduled = undefined;
    }
    if (this.dirty.size === 0) return;
    const batch = [...this.dirty];
    this.dirty.clear();
    this.dirtyCount = 0;
    this.driver.transaction(() => {
      for (const [user, clients] of batch) {
        const data: Record<string, Stored> = {};
        for (const [client, r] of clients) data[client] = { delivered: r.delivered.toJSON(), firstSeen: r.firstSeen, lastSeen: r.lastSeen };
        this.store.setKeys(user, data);
      }
    });
  }

  /** Replaces a user's records (after a cleanup); `undefined` forgets a client. */
  save(user: string, records: Map<string, ClientRecord | undefined>): void {
    const data: Record<string, Stored | undefined> = {};
    const pending = this.dirty.get(user);
    for (const [client, r] of records) {
      const newer = pending?.get(client);
      if (r && newer) {
        // deliveries recorded while the cleanup ran are kept
        r.delivered = r.delivered.union(newer.delivered);
        r.lastSeen = Math.max(r.lastSeen, newer.lastSeen);
        pending!.set(client, r);
      }
      data[client] = r && { delivered: r.delivered.toJSON(), firstSeen: r.firstSeen, lastSeen: r.lastSeen };
    }
    this.store.setKeys(user, data);
  }

  forgetUser(user: string): void {
    this.dirtyCount -= this.dirty.get(user)?.size ?? 0;
    this.dirty.delete(user);
  }

  users(): string[] {
    return [...new Set([...this.store.users(), ...this.dirty.keys()])];
  }
}
