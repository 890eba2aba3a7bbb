// Storage contracts. Modules see only these; drivers implement them.
// Stores are synchronous, as the SQLite driver (better-sqlite3) is.
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

/** Prosody's keyval store: one table per user (user `undefined` = the host itself). */
export interface KeyValueStore {
  get(user: string | undefined): KeyvalData | undefined;
  /** Replaces the user's whole table; `undefined` (or an empty object) deletes it. */
  set(user: string | undefined, data: KeyvalData | undefined): void;
  /** Users that have data in this store. */
  users(): string[];
}

/** Prosody's map store: single keys of a user's table. */
export interface MapStore {
  get(user: string | undefined, key: string): StoredValue | undefined;
  /** `undefined` deletes the key. */
  set(user: string | undefined, key: string, value: StoredValue | undefined): void;
  /** Sets several keys in one transaction (`undefined` values delete). */
  setKeys(user: string | undefined, data: Record<string, StoredValue | undefined>): void;
  /** Every key/value of the user (non-string keys under NON_STRING_KEYS). */
  getAll(user: string | undefined): KeyvalData | undefined;
  users(): string[];
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
   * ones before it. Like `pos`, it holds once the append is committed: an
   * append inside a caller's transaction that is rolled back gives its
   * position out again.
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
   * deleted (SQLite: `sort_id ... AUTOINCREMENT`, as Prosody creates it).
   * Smart retention's delivery records are positions, so it needs this.
   */
  readonly stablePositions: boolean;
}

export interface ArchiveStore {
  readonly caps: ArchiveCaps;
  append(user: string, item: ArchiveAppend): ArchiveRef;
  find(user: string, query?: ArchiveQuery): ArchivePage;
  get(user: string, id: string): ArchiveItem | undefined;
  /** Deletes matching items of `user` (of every user when `null`); returns how many. */
  delete(user: string | null, query?: ArchiveDeleteQuery): number;
  summary(user: string): ArchiveSummary;
  /** Users with at least one item. */
  users(): string[];
}

export type StoreOf<K extends StoreKind> = K extends "keyval"
  ? KeyValueStore
  : K extends "map"
    ? MapStore
    : ArchiveStore;

export interface StorageDriver {
  readonly name: string;
  keyval(host: string, store: string): KeyValueStore;
  map(host: string, store: string): MapStore;
  archive(host: string, store: string): ArchiveStore;
  /** Runs `fn` in one transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T;
  /** Removes everything stored for one user of one host, in every store. */
  deleteUser(host: string, user: string): void;
  close(): void;
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
  | { driver: "memory" }
  | { driver: "sqlite"; database: string; synchronous: "full" | "normal" };
