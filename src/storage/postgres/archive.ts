// The archive store of the PostgreSQL driver: Prosody's prosodyarchive table.
// Appends of one batch become three statements whatever their number: the
// positions drawn from the sequence (in the order of the appends), the rows,
// and each row's `prev`, read under the users' locks the batch holds.
import { randomUUID } from "node:crypto";
import { Element } from "@xmpp/xml";
import { decodeValue, serializeXml } from "../codec.js";
import { toSeconds } from "../filter.js";
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
import type { Queryable } from "./connection.js";
import { lockKey } from "./schema.js";
import type { AppendResult, AppendRow, PgWriter } from "./writer.js";

/** The range of "when" (int4 seconds: 1901-12-13T20:45:52Z to 2038-01-19T03:14:07Z). */
const INT4_MIN = -2147483648;
const INT4_MAX = 2147483647;

const COLS = 'SELECT "sort_id","key","when","with","type","value" FROM "prosodyarchive"';

/** Appends rows in their order, under the locks of their users (held by the caller's transaction). */
export async function appendRows(c: Queryable, seq: string, rows: AppendRow[]): Promise<AppendResult[]> {
  if (rows.length === 1) {
    // one row, one statement: its position drawn, the row inserted, and the user's newest position
    // before it read (the statement's snapshot does not show its own insert)
    const r = rows[0]!;
    const one = await c.query(
      'WITH p AS (SELECT nextval($1::regclass) AS pos), i AS (INSERT INTO "prosodyarchive" ("sort_id","host","user","store","key","when","with","type","value") ' +
        "SELECT pos,$2,$3,$4,$5,$6,$7,'xml',$8 FROM p RETURNING \"sort_id\") " +
        'SELECT (SELECT "sort_id" FROM i) AS pos, (SELECT max("sort_id") FROM "prosodyarchive" WHERE "host"=$2 AND "user"=$3 AND "store"=$4) AS prev',
      [seq, r.host, r.user, r.store, r.key, r.when, r.with, r.value],
    );
    return [{ pos: one.rows[0]!.pos as number, prev: (one.rows[0]!.prev as number | null) ?? undefined }];
  }
  const drawn = await c.query("SELECT nextval($1::regclass) AS p FROM generate_series(1, $2)", [seq, rows.length]);
  const pos = drawn.rows.map((r) => r.p as number).sort((a, b) => a - b);
  const col = <K extends keyof AppendRow>(k: K) => rows.map((r) => r[k]);
  await c.query(
    'INSERT INTO "prosodyarchive" ("sort_id","host","user","store","key","when","with","type","value") ' +
      "SELECT p,h,u,s,k,w,x,'xml',v FROM unnest($1::bigint[],$2::text[],$3::text[],$4::text[],$5::text[],$6::int[],$7::text[],$8::text[]) AS r(p,h,u,s,k,w,x,v)",
    [pos, col("host"), col("user"), col("store"), col("key"), col("when"), col("with"), col("value")],
  );
  const prev = await c.query(
    'SELECT i."sort_id" AS pos, (SELECT p."sort_id" FROM "prosodyarchive" p WHERE p."host"=i."host" AND p."user"=i."user" AND p."store"=i."store" AND p."sort_id"<i."sort_id" ORDER BY p."sort_id" DESC LIMIT 1) AS prev ' +
      'FROM "prosodyarchive" i WHERE i."sort_id"=ANY($1::bigint[])',
    [pos],
  );
  const before = new Map(prev.rows.map((r) => [r.pos as number, (r.prev as number | null) ?? undefined]));
  return pos.map((p) => ({ pos: p, prev: before.get(p) }));
}

export class PgArchive implements ArchiveStore {
  readonly caps: ArchiveCaps = { total: true, wildcardDelete: true, ids: true, stablePositions: true };

  constructor(
    private readonly w: PgWriter,
    private readonly host: string,
    private readonly store: string,
    /** The sort_id sequence's name. */
    private readonly seq: () => string,
  ) {}

  async append(user: string, item: ArchiveAppend): Promise<ArchiveRef> {
    const id = item.id ?? randomUUID();
    const when = toSeconds(item.when);
    const row: AppendRow = { host: this.host, user, store: this.store, key: id, when, with: item.with, value: serializeXml(item.stanza) };
    const locks = [lockKey(this.host, user)];
    const r =
      item.id === undefined
        ? await this.w.write<AppendResult>({ locks, append: row })
        : await this.w.write<AppendResult>({
            locks,
            run: async (c) => {
              // a replacement: the old item goes in the same transaction
              await c.query('DELETE FROM "prosodyarchive" WHERE "host"=$1 AND "user"=$2 AND "store"=$3 AND "key"=$4', [this.host, user, this.store, id]);
              return (await appendRows(c, this.seq(), [row]))[0]!;
            },
          });
    return r.prev === undefined ? { id, pos: r.pos, when: when * 1000 } : { id, pos: r.pos, when: when * 1000, prev: r.prev };
  }

  /** The WHERE clause of a query (placeholders from $1), and its values. */
  private where(user: string | null, q: ArchiveQuery & ArchiveDeleteQuery): [string, unknown[]] {
    const args: unknown[] = [this.host, this.store];
    const parts = ['"host"=$1', '"store"=$2'];
    const add = (sql: string, v: unknown) => {
      args.push(v);
      parts.push(sql.replace("?", `$${args.length}`));
    };
    if (user !== null) add('"user"=?', user);
    // "when" is int4, as Prosody made it: PostgreSQL refuses a bound outside it ("value ... is out
    // of range for type integer"), so the bounds are held to the range, keeping their meaning; a
    // start after the last second it holds (or an end before the first) matches nothing
    if (q.start !== undefined) {
      const s = Math.ceil(q.start / 1000);
      if (s > INT4_MAX) parts.push("FALSE");
      else add('"when">=?', Math.max(s, INT4_MIN));
    }
    if (q.end !== undefined) {
      const e = Math.floor(q.end / 1000);
      if (e < INT4_MIN) parts.push("FALSE");
      else add('"when"<=?', Math.min(e, INT4_MAX));
    }
    if (q.with !== undefined) add('"with"=?', q.with);
    if (q.ids !== undefined) add('"key"=ANY(?::text[])', [...q.ids]);
    return [parts.join(" AND "), args];
  }

  private locks(user: string | null): number[] {
    return user === null ? [] : [lockKey(this.host, user)];
  }

  private async posOf(user: string, id: string): Promise<number> {
    const rows = await this.w.read(
      'SELECT "sort_id" FROM "prosodyarchive" WHERE "host"=$1 AND "user"=$2 AND "store"=$3 AND "key"=$4',
      [this.host, user, this.store, id],
      this.locks(user),
    );
    if (rows.length === 0) throw new StorageError("item-not-found", "no archive item with this id");
    return rows[0]!.sort_id as number;
  }

  async find(user: string, q: ArchiveQuery = {}): Promise<ArchivePage> {
    const [where, args] = this.where(user, q);
    const page: ArchivePage = { items: [] };
    if (q.total) {
      const rows = await this.w.read(`SELECT COUNT(*) AS n FROM "prosodyarchive" WHERE ${where}`, args, this.locks(user));
      page.total = rows[0]!.n as number;
    }
    const rargs = args.slice();
    let range = "";
    const lo = q.after !== undefined ? await this.posOf(user, q.after) : undefined;
    const hi = q.before !== undefined ? await this.posOf(user, q.before) : undefined;
    for (const [op, v] of [
      [">", lo],
      [">", q.afterPos],
      ["<", hi],
      ["<", q.beforePos],
    ] as const) {
      if (v === undefined) continue;
      rargs.push(v);
      range += ` AND "sort_id"${op}$${rargs.length}`;
    }
    let sql = `${COLS} WHERE ${where}${range} ORDER BY "sort_id" ${q.reverse ? "DESC" : "ASC"}`;
    if (q.limit !== undefined) {
      rargs.push(q.limit);
      sql += ` LIMIT $${rargs.length}`;
    }
    page.items = (await this.w.read(sql, rargs, this.locks(user))).map(toItem);
    return page;
  }

  async get(user: string, id: string): Promise<ArchiveItem | undefined> {
    const rows = await this.w.read(`${COLS} WHERE "host"=$1 AND "user"=$2 AND "store"=$3 AND "key"=$4`, [this.host, user, this.store, id], this.locks(user));
    return rows[0] === undefined ? undefined : toItem(rows[0]);
  }

  delete(user: string | null, q: ArchiveDeleteQuery = {}): Promise<number> {
    const [where, args] = this.where(user, q);
    let sql = where;
    if (q.fromPos !== undefined) {
      args.push(q.fromPos);
      sql += ` AND "sort_id">=$${args.length}`;
    }
    if (q.toPos !== undefined) {
      args.push(q.toPos);
      sql += ` AND "sort_id"<=$${args.length}`;
    }
    if (q.limit !== undefined) {
      args.push(q.limit);
      sql = `"sort_id" IN (SELECT "sort_id" FROM "prosodyarchive" WHERE ${sql} ORDER BY "sort_id" LIMIT $${args.length})`;
    }
    return this.w.write({
      locks: this.locks(user),
      run: async (c) => (await c.query(`DELETE FROM "prosodyarchive" WHERE ${sql}`, args)).rowCount ?? 0,
    });
  }

  async summary(user: string): Promise<ArchiveSummary> {
    const base = 'FROM "prosodyarchive" WHERE "host"=$1 AND "user"=$2 AND "store"=$3';
    const args = [this.host, user, this.store];
    const rows = await this.w.read(
      `SELECT (SELECT COUNT(*) ${base}) AS n, f."key" AS fk, f."sort_id" AS fp, f."when" AS fw, l."key" AS lk, l."sort_id" AS lp, l."when" AS lw ` +
        `FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT "key","sort_id","when" ${base} ORDER BY "sort_id" ASC LIMIT 1) f ON true ` +
        `LEFT JOIN LATERAL (SELECT "key","sort_id","when" ${base} ORDER BY "sort_id" DESC LIMIT 1) l ON true`,
      args,
      this.locks(user),
    );
    const r = rows[0]!;
    const s: ArchiveSummary = { count: r.n as number };
    if (s.count === 0 || r.fk === null || r.lk === null) return s;
    s.first = { id: r.fk as string, pos: r.fp as number, when: (r.fw as number) * 1000 };
    s.last = { id: r.lk as string, pos: r.lp as number, when: (r.lw as number) * 1000 };
    return s;
  }

  async users(): Promise<string[]> {
    return (await this.w.read('SELECT DISTINCT "user" FROM "prosodyarchive" WHERE "host"=$1 AND "store"=$2', [this.host, this.store])).map(
      (r) => r.user as string,
    );
  }
}

function toItem(r: Record<string, unknown>): ArchiveItem {
  const stanza = decodeValue(r.type as string, r.value as string);
  if (!(stanza instanceof Element)) throw new StorageError("bad-value", "archive item is not a stanza");
  return { id: r.key as string, pos: r.sort_id as number, when: Number(r.when) * 1000, with: r.with as string, stanza };
}
