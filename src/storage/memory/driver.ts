// The in-memory driver: the test kit's default. It keeps the same rows and
// positions the SQLite driver does, and groups writes into commits the same
// way (an undo log stands in for the transaction), so both pass the same
// contract suite, injected commit failures included.
import { randomUUID } from "node:crypto";
import type { Element } from "@xmpp/xml";
import { type CommitBackend, DEFAULT_GROUP_COMMIT, GroupCommit, GroupCommitted } from "../group-commit.js";
import { read, type Row, type RowBackend, RowKeyValueStore, RowMapStore } from "../rows.js";
import {
  type ArchiveAppend,
  type ArchiveCaps,
  type ArchiveDeleteQuery,
  type ArchiveItem,
  type ArchivePage,
  type ArchiveQuery,
  type ArchiveRef,
  type ArchiveStore,
  type ArchiveSummary,
  type CommitOptions,
  type KeyValueStore,
  type MapStore,
  type StorageDriver,
  StorageError,
} from "../types.js";
import { itemMatches, toSeconds } from "../filter.js";
import { cloneStanza } from "../../xmpp/stanza.js";

interface StoredItem {
  id: string;
  pos: number;
  whenSec: number;
  with: string;
  stanza: Element;
}

interface UserArchive {
  items: StoredItem[]; // ascending pos
  byId: Map<string, StoredItem>;
}

const sep = "\u0000";

/** The open batch's undo log: what puts every change back, newest last; savepoints are marks in it. */
class UndoLog implements CommitBackend {
  private log: (() => void)[] | undefined;
  private readonly marks: [string, number][] = [];

  /** Records how to undo a change about to be made (outside a batch there is nothing to undo). */
  push(undo: () => void): void {
    this.log?.push(undo);
  }
  begin(): void {
    this.log = [];
  }
  commit(): void {
    this.log = undefined;
    this.marks.length = 0;
  }
  rollback(): void {
    this.undoTo(0);
    this.commit();
  }
  inBatch(): boolean {
    return this.log !== undefined;
  }
  savepoint(name: string): void {
    this.marks.push([name, this.log?.length ?? 0]);
  }
  release(name: string): void {
    const i = this.find(name);
    this.marks.length = i;
  }
  rollbackTo(name: string): void {
    const i = this.find(name);
    this.undoTo(this.marks[i]![1]);
    this.marks.length = i + 1;
  }
  private find(name: string): number {
    for (let i = this.marks.length - 1; i >= 0; i--) if (this.marks[i]![0] === name) return i;
    throw new Error(`no savepoint ${name}`);
  }
  private undoTo(n: number): void {
    const log = this.log ?? [];
    while (log.length > n) log.pop()!();
  }
}

class MemoryRows implements RowBackend {
  // host \0 user \0 store -> key -> row
  readonly tables = new Map<string, Map<string, Row>>();

  constructor(
    readonly writes: GroupCommit,
    private readonly undo: UndoLog,
  ) {}

  /** Puts a table back as it is now, should the batch roll back. */
  private keep(k: string): void {
    const t = this.tables.get(k);
    const before = t && new Map(t);
    this.undo.push(() => {
      if (before) this.tables.set(k, before);
      else this.tables.delete(k);
    });
  }

  rows(host: string, user: string, store: string): Row[] {
    const t = this.tables.get(host + sep + user + sep + store);
    return t ? [...t.values()].map((r) => ({ ...r })) : [];
  }
  row(host: string, user: string, store: string, key: string): Row | undefined {
    const r = this.tables.get(host + sep + user + sep + store)?.get(key);
    return r && { ...r };
  }
  deleteRows(host: string, user: string, store: string): void {
    const k = host + sep + user + sep + store;
    this.keep(k);
    this.tables.delete(k);
  }
  deleteRow(host: string, user: string, store: string, key: string): void {
    const k = host + sep + user + sep + store;
    this.keep(k);
    const t = this.tables.get(k);
    if (t?.delete(key) && t.size === 0) this.tables.delete(k);
  }
  insertRow(host: string, user: string, store: string, key: string, type: string, value: string): void {
    const k = host + sep + user + sep + store;
    this.keep(k);
    let t = this.tables.get(k);
    if (!t) {
      t = new Map();
      this.tables.set(k, t);
    }
    t.set(key, { key, type, value });
  }
  users(host: string, store: string): string[] {
    const out: string[] = [];
    for (const k of this.tables.keys()) {
      const [h, u, s] = k.split(sep);
      if (h === host && s === store && u !== "") out.push(u!);
    }
    return out;
  }
}

class MemoryArchive implements ArchiveStore {
  readonly caps: ArchiveCaps = { total: true, wildcardDelete: true, ids: true, stablePositions: true };
  private readonly users_ = new Map<string, UserArchive>();

  constructor(
    private readonly driver: MemoryDriver,
    private readonly undo: UndoLog,
  ) {}

  /** Puts a user's archive back as it is now, should the batch roll back. */
  private keep(user: string): void {
    const a = this.users_.get(user);
    const before = a && { items: a.items.slice(), byId: new Map(a.byId) };
    this.undo.push(() => {
      if (before) this.users_.set(user, before);
      else this.users_.delete(user);
    });
  }

  append(user: string, item: ArchiveAppend): Promise<ArchiveRef> {
    return this.driver.writes.write(() => this.appendNow(user, item));
  }

  private appendNow(user: string, item: ArchiveAppend): ArchiveRef {
    const id = item.id ?? randomUUID();
    // replacing an item by id first (which may leave the user with no archive at all)
    if (item.id !== undefined && this.users_.get(user)?.byId.has(id)) this.deleteNow(user, { ids: [id] });
    this.keepAppend(user);
    let a = this.users_.get(user);
    if (!a) {
      a = { items: [], byId: new Map() };
      this.users_.set(user, a);
    }
    const prev = a.items[a.items.length - 1]?.pos;
    const stored: StoredItem = {
      id,
      pos: this.driver.nextPos(),
      whenSec: toSeconds(item.when),
      with: item.with,
      stanza: cloneStanza(item.stanza),
    };
    a.items.push(stored);
    a.byId.set(id, stored);
    return prev === undefined ? { id, pos: stored.pos, when: stored.whenSec * 1000 } : { id, pos: stored.pos, when: stored.whenSec * 1000, prev };
  }

  /** An append's undo: cheaper than a copy, it takes the newest item off again. */
  private keepAppend(user: string): void {
    const a = this.users_.get(user);
    if (!a) {
      this.undo.push(() => this.users_.delete(user));
      return;
    }
    const n = a.items.length;
    this.undo.push(() => {
      const cur = this.users_.get(user);
      if (!cur) return;
      for (const it of cur.items.splice(n)) cur.byId.delete(it.id);
    });
  }

  find(user: string, q: ArchiveQuery = {}): Promise<ArchivePage> {
    return read(() => this.findNow(user, q));
  }

  private findNow(user: string, q: ArchiveQuery): ArchivePage {
    const a = this.users_.get(user);
    let lo = q.afterPos ?? Number.NEGATIVE_INFINITY;
    let hi = q.beforePos ?? Number.POSITIVE_INFINITY;
    if (q.after !== undefined) lo = Math.max(lo, this.posOf(a, q.after));
    if (q.before !== undefined) hi = Math.min(hi, this.posOf(a, q.before));
    const ids = q.ids ? new Set(q.ids) : undefined;
    const page: ArchivePage = { items: [] };
    if (!a) {
      if (q.total) page.total = 0;
      return page;
    }
    const limit = q.limit ?? Number.POSITIVE_INFINITY;
    const list = a.items;
    let total = 0;
    const n = list.length;
    for (let i = 0; i < n; i++) {
      const it = list[q.reverse ? n - 1 - i : i]!;
      if (!itemMatches(it.whenSec, it.with, it.id, q, ids)) continue;
      total++;
      if (it.pos > lo && it.pos < hi && page.items.length < limit) page.items.push(toItem(it));
      else if (!q.total && page.items.length >= limit) break;
    }
    if (q.total) page.total = total;
    return page;
  }

  get(user: string, id: string): Promise<ArchiveItem | undefined> {
    const it = this.users_.get(user)?.byId.get(id);
    return Promise.resolve(it && toItem(it));
  }

  delete(user: string | null, q: ArchiveDeleteQuery = {}): Promise<number> {
    return this.driver.writes.write(() => this.deleteNow(user, q));
  }

  deleteNow(user: string | null, q: ArchiveDeleteQuery = {}): number {
    const owners = user === null ? [...this.users_.keys()] : [user];
    const ids = q.ids ? new Set(q.ids) : undefined;
    let left = q.limit ?? Number.POSITIVE_INFINITY;
    let count = 0;
    for (const owner of owners) {
      const a = this.users_.get(owner);
      if (!a) continue;
      this.keep(owner);
      const keep: StoredItem[] = [];
      for (const it of a.items) {
        if (
          left > 0 &&
          itemMatches(it.whenSec, it.with, it.id, q, ids) &&
          (q.fromPos === undefined || it.pos >= q.fromPos) &&
          (q.toPos === undefined || it.pos <= q.toPos)
        ) {
          a.byId.delete(it.id);
          left--;
          count++;
        } else keep.push(it);
      }
      if (keep.length === 0) this.users_.delete(owner);
      else a.items = keep;
    }
    return count;
  }

  summary(user: string): Promise<ArchiveSummary> {
    return read(() => this.summaryNow(user));
  }

  private summaryNow(user: string): ArchiveSummary {
    const items = this.users_.get(user)?.items ?? [];
    const ref = (it: StoredItem | undefined) => it && { id: it.id, pos: it.pos, when: it.whenSec * 1000 };
    const s: ArchiveSummary = { count: items.length };
    const first = ref(items[0]);
    const last = ref(items[items.length - 1]);
    if (first) s.first = first;
    if (last) s.last = last;
    return s;
  }

  users(): Promise<string[]> {
    return Promise.resolve([...this.users_.keys()]);
  }

  private posOf(a: UserArchive | undefined, id: string): number {
    const it = a?.byId.get(id);
    if (!it) throw new StorageError("item-not-found", "no archive item with this id");
    return it.pos;
  }
}

function toItem(it: StoredItem): ArchiveItem {
  return { id: it.id, pos: it.pos, when: it.whenSec * 1000, with: it.with, stanza: cloneStanza(it.stanza) };
}

export class MemoryDriver extends GroupCommitted implements StorageDriver {
  readonly name = "memory";
  private readonly undo = new UndoLog();
  /** Positions are never given out twice, even when a batch rolls back (the counter is not undone). */
  readonly writes: GroupCommit;
  private readonly rows: MemoryRows;
  private readonly archives = new Map<string, MemoryArchive>();
  private pos = 0;

  constructor(opts: { commit?: Partial<CommitOptions> } = {}) {
    super();
    this.writes = new GroupCommit(this.undo, { ...DEFAULT_GROUP_COMMIT, ...opts.commit });
    this.rows = new MemoryRows(this.writes, this.undo);
  }

  nextPos(): number {
    return ++this.pos;
  }

  keyval(host: string, store: string): KeyValueStore {
    return new RowKeyValueStore(this.rows, host, store);
  }

  map(host: string, store: string): MapStore {
    return new RowMapStore(this.rows, host, store);
  }

  archive(host: string, store: string): ArchiveStore {
    const k = host + sep + store;
    let a = this.archives.get(k);
    if (!a) {
      a = new MemoryArchive(this, this.undo);
      this.archives.set(k, a);
    }
    return a;
  }

  async deleteUser(host: string, user: string): Promise<void> {
    await this.writes.write(() => {
      for (const k of [...this.rows.tables.keys()]) {
        const [h, u, s] = k.split(sep);
        if (h === host && u === user) this.rows.deleteRows(h, u, s!);
      }
      for (const [k, a] of this.archives) if (k.startsWith(host + sep)) a.deleteNow(user);
    });
  }

  async close(): Promise<void> {
    await this.writes.closeAndSettle();
  }
}
