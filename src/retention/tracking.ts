// Per (user, client id) delivery records, in the map store
// `mam_smart_retention` (key = client id): the positions the client
// acknowledged as intervals, the newest archive position when the client was
// first seen, and when it was last seen.
//
// Writes are buffered and go out together at most FLUSH_DELAY_MS after the
// first change (sooner once MAX_DIRTY records wait), before every cleanup, and
// at unload; a flush is done once its writes are durable. Two things must
// never be lost, because losing them could delete a message: a new client's
// record (its first-seen position: a record made again later would say "first
// seen" later, and what came between would not wait for it under `all`), and a
// client's last-seen time (rolled back, a client could look expired). So a new
// client is written at once; a flush that fails (or whose commit fails) puts
// its records back into the buffer, merged with what came since, and is tried
// again (a cleanup does not start while it fails); and a cleanup's save merges
// with whatever was written or buffered while it ran instead of overwriting
// it. Losing acknowledgements in a crash only keeps messages longer.
//
// Several nodes on one PostgreSQL database track the same clients: there a
// flush merges each record with the stored one under the user's lock, so
// neither overwrites what the other knows.
//
// The store is asynchronous: a record not in the buffer is read once, and
// every update arriving meanwhile waits for that read and applies to the same
// record (two reads racing would each make a "new" client, the later one
// first seen later).
import type { MapStore, StorageDriver } from "../storage/types.js";

/** What tracking needs of the storage: transactions and durability. */
export type Transactions = Pick<StorageDriver, "transaction" | "mark" | "durable">;
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
/** Users written per transaction by a flush. */
const FLUSH_CHUNK = 100;

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
  private dirty = new Map<string, Map<string, ClientRecord>>();
  private dirtyCount = 0;
  private readonly forgotten = new Map<string, number>();
  /** Records made without reading the stored one (the read failed): merged with it when written. */
  private unsure = new Map<string, Set<string>>();
  /** Records being read: updates meanwhile wait for the read. */
  private readonly loading = new Map<string, Promise<ClientRecord>>();
  private scheduled: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /**
   * The batch a flush is writing, until it is durable: what it holds is not
   * buffered any more, and the store may not have it yet (its writes wait
   * their turn), so reads look here first.
   */
  private writing = new Map<string, Map<string, ClientRecord>>();

  constructor(
    readonly store: MapStore,
    private readonly driver: Transactions,
    private readonly onError: (err: unknown) => void,
    /** The newest archive position of a user: a new client's first-seen position. */
    private readonly newest: (user: string) => Promise<number>,
    /**
     * Other nodes write the same records (a shared PostgreSQL database): each
     * flush then merges with the stored record under the user's lock.
     */
    private readonly shared = false,
  ) {}

  /** A snapshot of every client of a user, buffered changes included (copies: later changes do not show). */
  async load(user: string): Promise<Map<string, ClientRecord>> {
    await Promise.all([...this.loading.values()].map((p) => p.catch(() => undefined)));
    const out = new Map<string, ClientRecord>();
    for (const [client, v] of Object.entries((await this.store.getAll(user)) ?? {})) {
      const r = decode(v);
      if (r) out.set(client, r);
    }
    for (const [client, rec] of this.writing.get(user) ?? []) out.set(client, merge(copy(rec), out.get(client)));
    for (const [client, rec] of this.dirty.get(user) ?? []) out.set(client, merge(copy(rec), out.get(client)));
    return out;
  }

  /**
   * The stored record, to merge with; one that cannot be read (a bad row: a
   * hand edit, another tool) counts as none — the record written instead says
   * only what is surely true, and lost deliveries only keep messages longer.
   */
  private async storedOrNone(user: string, client: string): Promise<ClientRecord | undefined> {
    try {
      return decode(await this.store.get(user, client));
    } catch (err) {
      this.onError(err);
      return undefined;
    }
  }

  private touch(user: string, client: string, rec: ClientRecord): void {
    let m = this.dirty.get(user);
    if (!m) {
      m = new Map();
      this.dirty.set(user, m);
    }
    if (!m.has(client)) this.dirtyCount++;
    m.set(client, rec);
    if (this.dirtyCount >= MAX_DIRTY) void this.flushSafely();
    else this.schedule();
  }

  private schedule(): void {
    if (this.scheduled !== undefined || this.dirtyCount === 0) return;
    this.scheduled = setTimeout(() => void this.flushSafely(), FLUSH_DELAY_MS);
    this.scheduled.unref();
  }

  private async flushSafely(): Promise<void> {
    try {
      await this.flush();
    } catch (err) {
      this.onError(err);
      this.schedule(); // back in the buffer: try again
    }
  }

  /** The client was seen; a new client records the newest archive position as its first-seen one. */
  seen(user: string, client: string, now: number): Promise<void> {
    return this.update(user, client, now, undefined, undefined);
  }

  /** The client acknowledged positions a..b. */
  delivered(user: string, client: string, a: number, b: number, now: number): Promise<void> {
    return this.update(user, client, now, a, b);
  }

  /** Updates the record of (user, client), made (and written at once) if the client is new. */
  private update(user: string, client: string, now: number, a: number | undefined, b: number | undefined): Promise<void> {
    const apply = (rec: ClientRecord) => {
      if (a !== undefined && b !== undefined) rec.delivered.add(a, b);
      rec.lastSeen = Math.max(rec.lastSeen, now);
      this.touch(user, client, rec);
    };
    const hot = this.dirty.get(user)?.get(client);
    if (hot) {
      apply(hot);
      return Promise.resolve();
    }
    const beingWritten = this.writing.get(user)?.get(client);
    if (beingWritten) {
      // a flush is writing it: changes go into the buffer, on a copy of what it writes
      apply(copy(beingWritten));
      return Promise.resolve();
    }
    const key = `${user}\u0000${client}`;
    let loading = this.loading.get(key);
    if (!loading) {
      loading = this.loadRecord(user, client, now).finally(() => this.loading.delete(key));
      this.loading.set(key, loading);
    }
    return loading.then(apply);
  }

  /** Reads a record into the buffer; a new client's is made and written at once. */
  private async loadRecord(user: string, client: string, now: number): Promise<ClientRecord> {
    let rec: ClientRecord;
    let isNew = false;
    try {
      const stored = decode(await this.store.get(user, client));
      isNew = stored === undefined;
      rec = stored ?? { delivered: new IntervalSet(), firstSeen: await this.newest(user), lastSeen: now };
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
      isNew = true;
    }
    // (a flush may have put a record of this client back into the buffer meanwhile, or be writing one)
    const buffered = this.dirty.get(user)?.get(client) ?? this.writing.get(user)?.get(client);
    if (buffered) rec = merge(buffered, rec);
    this.touch(user, client, rec);
    if (isNew) void this.flushSafely();
    return rec;
  }

  /**
   * Writes buffered changes; resolves once they are durable. On failure they
   * are back in the buffer (merged with changes made since), and the error is thrown.
   */
  async flush(): Promise<void> {
    // records still being read are part of what to write (a new client's first sighting above all)
    while (this.loading.size > 0) await Promise.all([...this.loading.values()].map((p) => p.catch(() => undefined)));
    while (this.flushing !== undefined) await this.flushing.catch(() => undefined);
    if (this.scheduled !== undefined) {
      clearTimeout(this.scheduled);
      this.scheduled = undefined;
    }
    if (this.dirty.size === 0) return;
    const batch = this.dirty;
    const unsure = this.unsure;
    this.dirty = new Map();
    this.dirtyCount = 0;
    this.unsure = new Map();
    this.writing = batch;
    const run = this.write(batch, unsure);
    this.flushing = run;
    try {
      await run;
    } catch (err) {
      this.putBack(batch, unsure);
      throw err;
    } finally {
      this.writing = new Map();
      this.flushing = undefined;
    }
  }

  /**
   * Writes the buffered records. Alone on its storage, this process knows
   * each record whole (read once, then kept here): it writes it as it is,
   * merged with the stored one only where it could not read that. When other
   * nodes share the storage, another may have written the client since: each
   * record is then merged with the stored one, read in the same transaction,
   * which holds the user's lock from the read to the write; users go in one
   * order, in chunks, so that no transaction holds many locks for long.
   */
  private async write(batch: Map<string, Map<string, ClientRecord>>, unsure: Map<string, Set<string>>): Promise<void> {
    const mark = this.driver.mark();
    if (!this.shared) {
      for (const [user, clients] of batch) {
        const data: Record<string, Stored> = {};
        const uns = unsure.get(user);
        for (const [client, r] of clients) data[client] = encode(uns?.has(client) ? merge(r, await this.storedOrNone(user, client)) : r);
        await this.store.setKeys(user, data);
      }
    } else {
      const users = [...batch.keys()].sort();
      for (let i = 0; i < users.length; i += FLUSH_CHUNK) {
        await this.driver.transaction(async () => {
          for (const user of users.slice(i, i + FLUSH_CHUNK)) {
            const data: Record<string, Stored> = {};
            for (const [client, r] of batch.get(user)!) data[client] = encode(merge(r, await this.storedOrNone(user, client)));
            await this.store.setKeys(user, data);
          }
        });
      }
    }
    await this.driver.durable(mark);
  }

  /** A flush failed: its records go back into the buffer, merged with what was recorded since. */
  private putBack(batch: Map<string, Map<string, ClientRecord>>, unsure: Map<string, Set<string>>): void {
    for (const [user, clients] of batch) {
      for (const [client, r] of clients) {
        const now = this.dirty.get(user)?.get(client);
        this.touch(user, client, merge(r, now));
        if (unsure.get(user)?.has(client)) {
          let m = this.unsure.get(user);
          if (!m) {
            m = new Set();
            this.unsure.set(user, m);
          }
          m.add(client);
        }
      }
    }
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
  async save(user: string, next: Map<string, ClientRecord | undefined>, before: Map<string, ClientRecord>): Promise<() => void> {
    const data: Record<string, Stored | undefined> = {};
    const pending = this.dirty.get(user);
    const written = new Map<string, string>(); // client → the buffered record written, encoded
    for (const [client, r] of next) {
      const stored = decode(await this.store.get(user, client));
      const buffered = pending?.get(client);
      // (a flush writing meanwhile waits behind the cleanup's transaction: its record counts too)
      const inFlight = this.writing.get(user)?.get(client);
      const both = stored && inFlight ? merge(stored, inFlight) : (inFlight ?? stored);
      const current: ClientRecord | undefined = both && buffered ? merge(both, buffered) : (buffered ?? both);
      if (buffered) written.set(client, JSON.stringify(encode(buffered)));
      if (r === undefined) {
        const was = before.get(client);
        const seenAgain = current !== undefined && (was === undefined || current.lastSeen > was.lastSeen);
        data[client] = seenAgain && current ? encode(current) : undefined;
      } else {
        data[client] = encode(merge(r, current));
      }
    }
    await this.store.setKeys(user, data);
    return () => {
      const m = this.dirty.get(user);
      if (!m) return;
      for (const [client, was] of written) {
        // only what was written: a record changed since stays buffered
        const rec = m.get(client);
        if (rec && JSON.stringify(encode(rec)) === was && m.delete(client)) this.dirtyCount--;
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
  async forgetUser(user: string): Promise<void> {
    this.forgotten.set(user, this.generation(user) + 1);
    await this.flushSafely();
  }

  /** Changes when the user's tracking is forgotten (account deleted): a cleanup begun before must not save. */
  generation(user: string): number {
    return this.forgotten.get(user) ?? 0;
  }

  async users(): Promise<string[]> {
    return [...new Set([...(await this.store.users()), ...this.dirty.keys()])];
  }
}
