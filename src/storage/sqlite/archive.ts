// The archive store of the SQLite driver: Prosody's prosodyarchive table, with
// each user's count kept in memory (exact; dropped when another connection wrote).
import { randomUUID } from "node:crypto";
import { Element } from "@xmpp/xml";
import { decodeValue, serializeXml } from "../codec.js";
import { toSeconds } from "../filter.js";
import { read } from "../rows.js";
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
  StorageError,
} from "../types.js";
import type { SqliteDriver } from "./driver.js";

export interface ArchiveRow {
  sort_id: number;
  key: string;
  when: number;
  with: string;
  type: string;
  value: string;
}

const COLS = 'SELECT "sort_id","key","when","with","type","value" FROM "prosodyarchive"';

export class SqliteArchive implements ArchiveStore {
  readonly caps: ArchiveCaps;
  // Each user's whole count, and per conversation partner (the RSM <count/> of
  // every unfiltered or `with`-only page, which Prosody counts row by row on
  // every query): counted once, then kept up to date with this connection's
  // own appends and deletes; dropped when another connection committed or a
  // batch rolled back (countsEpoch). user → (with, or "" for all) → count
  private readonly counts = new Map<string, Map<string, number>>();
  private epoch = -1;

  constructor(
    private readonly d: SqliteDriver,
    private readonly host: string,
    private readonly store: string,
  ) {
    this.caps = { total: true, wildcardDelete: true, ids: true, stablePositions: d.archivePositionsStable };
  }

  append(user: string, item: ArchiveAppend): Promise<ArchiveRef> {
    const id = item.id ?? randomUUID();
    const when = toSeconds(item.when);
    const value = serializeXml(item.stanza);
    const insert = () =>
      this.d
        .stmt(
          'INSERT INTO "prosodyarchive" ("host","user","store","when","with","key","type","value") VALUES (?,?,?,?,?,?,\'xml\',?)',
        )
        .run(this.host, user, this.store, when, item.with, id, value);
    // One transaction: the insert, and the user's previous position read under the
    // same write lock. sort_id is AUTOINCREMENT, so every row below `pos` is
    // committed and none can appear there later, whoever writes to the file.
    const write = () => {
      if (item.id !== undefined) {
        this.d
          .stmt('DELETE FROM "prosodyarchive" WHERE "host"=? AND "user"=? AND "store"=? AND "key"=?')
          .run(this.host, user, this.store, id);
      }
      const p = Number(insert().lastInsertRowid);
      const row = this.d
        .stmt('SELECT "sort_id" AS "prev" FROM "prosodyarchive" WHERE "host"=? AND "user"=? AND "store"=? AND "sort_id"<? ORDER BY "sort_id" DESC LIMIT 1')
        .get(this.host, user, this.store, p) as { prev: number | bigint } | undefined;
      return [p, row === undefined ? undefined : Number(row.prev)] as const;
    };
    // A plain append is one statement, atomic by itself: no savepoint (they cost as much as the
    // insert); a replacement by id keeps one, so that its delete and insert stay one.
    return this.d.writes.write(() => {
      const [pos, prev] = this.d.run("append", write);
      this.d.gavePosition(pos);
      const mine = this.counts.get(user);
      if (mine !== undefined && item.id === undefined) {
        for (const k of ["", item.with]) {
          const n = mine.get(k);
          if (n !== undefined) mine.set(k, n + 1);
        }
      } else this.counts.delete(user);
      return prev === undefined ? { id, pos, when: when * 1000 } : { id, pos, when: when * 1000, prev };
    }, item.id === undefined);
  }

  private where(user: string | null, q: ArchiveQuery & ArchiveDeleteQuery): [string, unknown[]] {
    const parts = ['"host"=?', '"store"=?'];
    const args: unknown[] = [this.host, this.store];
    if (user !== null) {
      parts.push('"user"=?');
      args.push(user);
    }
    if (q.start !== undefined) {
      parts.push('"when">=?');
      args.push(q.start / 1000);
    }
    if (q.end !== undefined) {
      parts.push('"when"<=?');
      args.push(q.end / 1000);
    }
    if (q.with !== undefined) {
      parts.push('"with"=?');
      args.push(q.with);
    }
    if (q.ids !== undefined) {
      parts.push('"key" IN (SELECT value FROM json_each(?))');
      args.push(JSON.stringify(q.ids));
    }
    return [parts.join(" AND "), args];
  }

  private posOf(user: string, id: string): number {
    const row = this.d
      .stmt('SELECT "sort_id" FROM "prosodyarchive" WHERE "host"=? AND "user"=? AND "store"=? AND "key"=?')
      .get(this.host, user, this.store, id) as { sort_id: number } | undefined;
    if (!row) throw new StorageError("item-not-found", "no archive item with this id");
    return row.sort_id;
  }

  find(user: string, q: ArchiveQuery = {}): Promise<ArchivePage> {
    return read(() => this.findNow(user, q));
  }

  private findNow(user: string, q: ArchiveQuery): ArchivePage {
    return this.d.run("query", () => {
      const [where, args] = this.where(user, q);
      const page: ArchivePage = { items: [] };
      if (q.total) {
        const cacheable = q.start === undefined && q.end === undefined && q.ids === undefined;
        page.total = cacheable ? this.cachedCount(user, q.with ?? "", where, args) : this.count(where, args);
      }
      let range = "";
      const rargs = args.slice();
      const lo = q.after !== undefined ? this.posOf(user, q.after) : undefined;
      const hi = q.before !== undefined ? this.posOf(user, q.before) : undefined;
      for (const [op, v] of [
        [">", lo],
        [">", q.afterPos],
        ["<", hi],
        ["<", q.beforePos],
      ] as const) {
        if (v === undefined) continue;
        range += ` AND "sort_id"${op}?`;
        rargs.push(v);
      }
      const order = ` ORDER BY "sort_id" ${q.reverse ? "DESC" : "ASC"}`;
      let sql: string;
      if ((q.start !== undefined || q.end !== undefined) && q.limit !== undefined) {
        // A date range is found through the (host, user, store, when) index and its rows
        // sorted by position: sort the positions alone (the index covers them), then read
        // only the page's rows — about 40 % faster on a day of 3,300 rows
        sql = `${COLS} WHERE "sort_id" IN (SELECT "sort_id" FROM "prosodyarchive" WHERE ${where}${range}${order} LIMIT ?)${order}`;
        rargs.push(q.limit);
      } else {
        sql = `${COLS} WHERE ${where}${range}${order}`;
        if (q.limit !== undefined) {
          sql += " LIMIT ?";
          rargs.push(q.limit);
        }
      }
      const rows = this.d.stmt(sql).all(...rargs) as ArchiveRow[];
      page.items = rows.map(toItem);
      return page;
    });
  }

  private count(where: string, args: unknown[]): number {
    return (this.d.stmt(`SELECT COUNT(*) AS n FROM "prosodyarchive" WHERE ${where}`).get(...args) as { n: number }).n;
  }

  /** The count of the user's items (with `peer`, or all for ""), from the cache where it holds. */
  private cachedCount(user: string, peer: string, where: string, args: unknown[]): number {
    const epoch = this.d.countsEpoch();
    if (epoch !== this.epoch) {
      this.counts.clear();
      this.epoch = epoch;
    }
    let mine = this.counts.get(user);
    if (mine === undefined) {
      mine = new Map();
      this.counts.set(user, mine);
    }
    let n = mine.get(peer);
    if (n === undefined) {
      n = this.count(where, args);
      mine.set(peer, n);
    }
    return n;
  }

  get(user: string, id: string): Promise<ArchiveItem | undefined> {
    return read(() => this.d.run("query", () => {
      const row = this.d
        .stmt(`${COLS} WHERE "host"=? AND "user"=? AND "store"=? AND "key"=?`)
        .get(this.host, user, this.store, id) as ArchiveRow | undefined;
      return row && toItem(row);
    }));
  }

  delete(user: string | null, q: ArchiveDeleteQuery = {}): Promise<number> {
    if (user === null) this.counts.clear();
    else this.counts.delete(user);
    return this.d.writes.write(() => {
      const n = this.deleteNow(user, q);
      if (user === null) this.counts.clear();
      else this.counts.delete(user);
      return n;
    }, true);
  }

  private deleteNow(user: string | null, q: ArchiveDeleteQuery): number {
    return this.d.run("delete", () => {
      const [where, args] = this.where(user, q);
      let sql = where;
      if (q.fromPos !== undefined) {
        sql += ' AND "sort_id">=?';
        args.push(q.fromPos);
      }
      if (q.toPos !== undefined) {
        sql += ' AND "sort_id"<=?';
        args.push(q.toPos);
      }
      if (q.limit !== undefined) {
        sql = `"sort_id" IN (SELECT "sort_id" FROM "prosodyarchive" WHERE ${sql} ORDER BY "sort_id" LIMIT ?)`;
        args.push(q.limit);
      }
      return this.d.stmt(`DELETE FROM "prosodyarchive" WHERE ${sql}`).run(...args).changes;
    });
  }

  summary(user: string): Promise<ArchiveSummary> {
    return read(() => this.summaryNow(user));
  }

  private summaryNow(user: string): ArchiveSummary {
    return this.d.run("query", () => {
      const base = 'FROM "prosodyarchive" WHERE "host"=? AND "user"=? AND "store"=?';
      const args = [this.host, user, this.store];
      const { n } = this.d.stmt(`SELECT COUNT(*) AS n ${base}`).get(...args) as { n: number };
      const s: ArchiveSummary = { count: n };
      if (n === 0) return s;
      const ref = (r: { key: string; sort_id: number; when: number }) => ({
        id: r.key,
        pos: r.sort_id,
        when: Math.round(r.when * 1000),
      });
      s.first = ref(this.d.stmt(`SELECT "key","sort_id","when" ${base} ORDER BY "sort_id" ASC LIMIT 1`).get(...args) as never);
      s.last = ref(this.d.stmt(`SELECT "key","sort_id","when" ${base} ORDER BY "sort_id" DESC LIMIT 1`).get(...args) as never);
      return s;
    });
  }

  users(): Promise<string[]> {
    return read(() => this.d.run("query", () =>
      (
        this.d.stmt('SELECT DISTINCT "user" FROM "prosodyarchive" WHERE "host"=? AND "store"=?').all(
          this.host,
          this.store,
        ) as { user: string }[]
      ).map((r) => r.user),
    ));
  }
}

function toItem(r: ArchiveRow): ArchiveItem {
  const stanza = decodeValue(r.type, r.value);
  if (!(stanza instanceof Element)) throw new StorageError("bad-value", "archive item is not a stanza");
  return { id: r.key, pos: r.sort_id, when: Math.round(Number(r.when) * 1000), with: r.with, stanza };
}

