// Storage contracts. Modules see only these; drivers implement them.
//
// Every store method is asynchronous. A write's promise resolves once the
// write is applied: every later read, from anyone, sees it. It is durable —
// on disk, as the driver's `synchronous` setting defines it — once
// `driver.durable()` (called after it) resolves: drivers group the writes of
// many callers into one commit. `transaction(fn)` resolves once its writes
// are durable.
import type { Element } from "@xmpp/xml";

export type StoreKind = "keyval" | "map" | "archive";

/**
 * Prosody tables can have keys that are not strings (mod_mam's archive prefs
 * keep the default policy under the key `false`). Such keys live in this Map,
 * under this symbol, and are stored the way Prosody stores them: one row with
 * the empty key holding `{"__hash":[key, value, ...]}`.
 */
export const NON_STRING_KEYS: unique symbol = Symbol.for("mamkit.storage.nonStringKeys");

export interface KeyvalData {
  [key: string]: unknown;
  [NON_STRING_KEYS]?: Map<unknown, unknown>;
}

/**
 * Values a store keeps: strings, numbers, booleans, stanzas (`Element`) and
 * JSON-able objects/arrays — Prosody's `string`, `number`, `boolean`, `xml`,
 * `json` encodings.
 */
export type StoredValue = unknown;

/**
 * Prosody's keyval store: one table per user (user `undefined` = the host
 * itself). `T` is the table's shape as the caller stores it (not checked on
 * read: a table another program wrote may differ).
 */
export interface KeyValueStore<T extends object = KeyvalData> {
  get(user: string | undefined): Promise<T | undefined>;
  /** Replaces the user's whole table; `undefined` (or an empty object) deletes it. */
  set(user: string | undefined, data: T | undefined): Promise<void>;
  /** Users that have data in this store. */
  users(): Promise<string[]>;
}

/** Prosody's map store: single keys of a user's table. `V` is the values' type as the caller stores them (not checked on read). */
export interface MapStore<V = StoredValue> {
  get(user: string | undefined, key: string): Promise<V | undefined>;
  /** `undefined` deletes the key. */
  set(user: string | undefined, key: string, value: V | undefined): Promise<void>;
  /** Sets several keys at once: all of them or, on failure, none (`undefined` values delete). */
  setKeys(user: string | undefined, data: Record<string, V | undefined>): Promise<void>;
  /** Every key/value of the user (non-string keys under NON_STRING_KEYS). */
  getAll(user: string | undefined): Promise<Record<string, V> | undefined>;
  users(): Promise<string[]>;
}

export interface ArchiveAppend {
  stanza: Element;
  /** Milliseconds since the epoch; stored with one-second resolution, as Prosody does. */
  when: number;
  /** The conversation partner, usually a bare JID. */
  with: string;
  /** Reuse this id (an existing item with it is replaced); a fresh UUID otherwise. */
  id?: string;
}

export interface ArchiveItem {
  /** The public stanza-id: opaque, unique, unguessable. Never orders anything. */
  id: string;
  /** The sort position (`sort_id`): strictly increasing with every append. */
  pos: number;
  /** Milliseconds since the epoch (whole seconds). */
  when: number;
  with: string;
  stanza: Element;
}

export interface ArchiveQuery {
  /** Inclusive lower bound on `when`, ms. */
  start?: number;
  /** Inclusive upper bound on `when`, ms. */
  end?: number;
  with?: string;
  /** Only these ids. Unknown ids are simply absent from the result. */
  ids?: readonly string[];
  /** Only items after (before) this id in archive order; an unknown id throws `item-not-found`. */
  after?: string;
  before?: string;
  /** Only items with a position greater (smaller) than this. */
  afterPos?: number;
  beforePos?: number;
  limit?: number;
  /** Newest first (the limit then takes the newest). */
  reverse?: boolean;
  /** Also count every item matching start/end/with/ids (paging ignored). */
  total?: boolean;
}

export interface ArchivePage {
  items: ArchiveItem[];
  /** Present when the query asked for `total`. */
  total?: number;
}

export interface ArchiveDeleteQuery {
  start?: number;
  end?: number;
  with?: string;
  ids?: readonly string[];
  /** Inclusive position range. */
  fromPos?: number;
  toPos?: number;
  /** Delete at most this many items, oldest first (for batched deletes). */
  limit?: number;
}

export interface ArchiveRef {
  id: string;
  pos: number;
  when: number;
  /**
   * Set by `append` when the user had an item before in this store: the
   * position of the newest one. No item of the user lies strictly between
   * `prev` and `pos`, then or later (positions only grow), whichever process
   * writes. Smart retention uses it to record a delivery as one run with the
   * ones before it.
   */
  prev?: number;
}

export interface ArchiveSummary {
  count: number;
  first?: ArchiveRef;
  last?: ArchiveRef;
}

export interface ArchiveCaps {
  /** `find` can count the whole result set. */
  readonly total: boolean;
  /** `delete(null, ...)` deletes across all users in one go. */
  readonly wildcardDelete: boolean;
  /** `ids` filter and positions are supported. */
  readonly ids: boolean;
  /**
   * A position is never given out twice, even after the newest items were
   * deleted (SQLite: `sort_id ... AUTOINCREMENT`, as Prosody creates it) or
   * a commit failed (the driver moves the sequence past what it gave out).
   * Smart retention's delivery records are positions, so it needs this.
   */
  readonly stablePositions: boolean;
}

export interface ArchiveStore {
  readonly caps: ArchiveCaps;
  append(user: string, item: ArchiveAppend): Promise<ArchiveRef>;
  find(user: string, query?: ArchiveQuery): Promise<ArchivePage>;
  get(user: string, id: string): Promise<ArchiveItem | undefined>;
  /** Deletes matching items of `user` (of every user when `null`); returns how many. */
  delete(user: string | null, query?: ArchiveDeleteQuery): Promise<number>;
  summary(user: string): Promise<ArchiveSummary>;
  /** Users with at least one item. */
  users(): Promise<string[]>;
}

/** The store of a kind; `V`: a keyval table's shape, or a map store's value type. */
export type StoreOf<K extends StoreKind, V = never> = K extends "keyval"
  ? KeyValueStore<[V] extends [never] ? KeyvalData : V extends object ? V : KeyvalData>
  : K extends "map"
    ? MapStore<[V] extends [never] ? StoredValue : V>
    : ArchiveStore;

export interface StorageDriver {
  readonly name: string;
  keyval(host: string, store: string): KeyValueStore;
  map(host: string, store: string): MapStore;
  archive(host: string, store: string): ArchiveStore;
  /**
   * Runs `fn` as one transaction: its writes commit together or not at all.
   * Resolves with its result once they are durable. Nested calls join the
   * outer one. Other writers wait while `fn` runs: keep it short.
   */
  transaction<T>(fn: () => T | Promise<T>): Promise<T>;
  /** A mark for the writes issued from now on (see `durable`). */
  mark(): WriteMark;
  /**
   * Resolves once every write applied before the call is durable or lost.
   * With a `mark` (taken before the writes), rejects if a write issued since
   * may have been lost (a commit failed): take one whenever success is
   * reported on the strength of it. What a stanza caused is acknowledged only
   * after `durable(mark)`. Inside a transaction it rejects (it would wait for itself).
   */
  durable(mark?: WriteMark): Promise<void>;
  /** Removes everything stored for one user of one host, in every store. */
  deleteUser(host: string, user: string): Promise<void>;
  /** Commits what is pending and closes. */
  close(): Promise<void>;
  /**
   * Resolves once the driver can serve (connected, tables in place); rejects
   * saying why not, naming the setting. Drivers that open synchronously have none.
   */
  ready?(): Promise<void>;
  /**
   * What the nodes sharing this storage use to agree (see core/cluster.ts);
   * a driver one process has to itself has none, and the core then acts alone.
   */
  coordination?(warn: (message: string, err?: unknown) => void): Coordination;
}

/** Several processes on one database: one runs a task at a time, all answer a barrier. */
export interface Coordination {
  /** This process among the nodes (unique while it runs). */
  readonly nodeId: string;
  /**
   * Whether other nodes share the data as a matter of course (PostgreSQL):
   * then nothing read from storage may be remembered beyond the request
   * (MAM preferences, account existence), or a change made on another node
   * would go unseen for a while.
   */
  readonly shared: boolean;
  /**
   * Runs `fn` while this node holds the cluster-wide lock `name`. Another node
   * holding it: waits for it (`wait`), or returns `{ ran: false }` at once.
   * A node that dies lets go of it.
   */
  exclusive<T>(name: string, wait: boolean, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }>;
  /**
   * Asks every live node (this one too) to run its handlers of `topic`, and
   * resolves true once each has finished them, false if one did not within `timeoutMs`.
   */
  barrier(topic: string, timeoutMs: number): Promise<boolean>;
  /** This node's handler for a topic's barriers; returns what removes it. */
  onBarrier(topic: string, handler: () => Promise<void>): () => void;
  /** The live nodes (their ids). */
  nodes(): Promise<string[]>;
  close(): Promise<void>;
}

/** Counts the commits that failed: see `StorageDriver.durable`. */
export type WriteMark = number;

/** How writes are grouped into commits (the config's `storage.commit_delay_ms` / `commit_max_writes`). */
export interface CommitOptions {
  /** 0: at the end of the event loop's turn; more: at most this many ms after a batch's first write. */
  commitDelayMs: number;
  /** A batch of this many writes commits at once. */
  commitMaxWrites: number;
}

export type StorageErrorCode = "item-not-found" | "backend" | "bad-value";

export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "StorageError";
  }
}

/** Which driver to open, as the config's `storage` option says (parsed). */
export type StorageConfig =
  | ({ driver: "memory" } & Partial<CommitOptions>)
  | ({ driver: "sqlite"; database: string; synchronous: "full" | "normal" } & Partial<CommitOptions>)
  | ({
      driver: "postgres";
      url: string;
      pool: number;
      /** The setting the URL came from ("storage.url", or "sql" for Prosody's table), for errors. */
      setting: string;
    } & Partial<CommitOptions>);
