// keyval and map stores on PostgreSQL's "prosody" table: the same rows as on
// SQLite (rows.ts encodes and decodes them), written through the group commit
// under the user's advisory lock, read from the pool (or, in a transaction,
// on its connection and under the same lock).
import { decodeValue, encodeValue } from "../codec.js";
import { checkKey, decodeRows, encodeTable, type Row } from "../rows.js";
import type { KeyValueStore, KeyvalData, MapStore, StoredValue } from "../types.js";
import { lockKey } from "./schema.js";
import type { PgWriter } from "./writer.js";

const SELECT_ROWS = 'SELECT "key","type","value" FROM "prosody" WHERE "host"=$1 AND "user"=$2 AND "store"=$3';
const DELETE_ROWS = 'DELETE FROM "prosody" WHERE "host"=$1 AND "user"=$2 AND "store"=$3';
const INSERT_ROWS =
  'INSERT INTO "prosody" ("host","user","store","key","type","value") SELECT $1,$2,$3,k,t,v FROM unnest($4::text[],$5::text[],$6::text[]) AS r(k,t,v)';
const SELECT_USERS = 'SELECT DISTINCT "user" FROM "prosody" WHERE "host"=$1 AND "store"=$2 AND "user"<>\'\'';

/** The locks a user's data is written under (host-wide data takes none). */
function locksOf(host: string, u: string): number[] {
  return u === "" ? [] : [lockKey(host, u)];
}

async function users(w: PgWriter, host: string, store: string): Promise<string[]> {
  return (await w.read(SELECT_USERS, [host, store])).map((r) => r.user as string);
}

export class PgKeyValueStore implements KeyValueStore {
  constructor(
    private readonly w: PgWriter,
    private readonly host: string,
    private readonly store: string,
  ) {}

  async get(user: string | undefined): Promise<KeyvalData | undefined> {
    const u = user ?? "";
    return decodeRows((await this.w.read(SELECT_ROWS, [this.host, u, this.store], locksOf(this.host, u))) as unknown as Row[]);
  }

  async set(user: string | undefined, data: KeyvalData | undefined): Promise<void> {
    const u = user ?? "";
    const rows = encodeTable(data); // a value that cannot be stored throws here, before anything changes
    const { host, store } = this;
    await this.w.write({
      locks: locksOf(host, u),
      run: async (c) => {
        await c.query(DELETE_ROWS, [host, u, store]);
        if (rows.length > 0) await c.query(INSERT_ROWS, [host, u, store, rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2])]);
      },
    });
  }

  users(): Promise<string[]> {
    return users(this.w, this.host, this.store);
  }
}

export class PgMapStore implements MapStore {
  constructor(
    private readonly w: PgWriter,
    private readonly host: string,
    private readonly store: string,
  ) {}

  async get(user: string | undefined, key: string): Promise<StoredValue | undefined> {
    checkKey(key);
    const u = user ?? "";
    const rows = await this.w.read(`${SELECT_ROWS} AND "key"=$4 LIMIT 1`, [this.host, u, this.store, key], locksOf(this.host, u));
    const row = rows[0] as unknown as Row | undefined;
    return row === undefined ? undefined : decodeValue(row.type, row.value);
  }

  set(user: string | undefined, key: string, value: StoredValue | undefined): Promise<void> {
    return this.setKeys(user, { [key]: value });
  }

  async setKeys(user: string | undefined, data: Record<string, StoredValue | undefined>): Promise<void> {
    const u = user ?? "";
    const keys: string[] = [];
    const put: [string, string, string][] = [];
    for (const [k, v] of Object.entries(data)) {
      checkKey(k);
      keys.push(k);
      if (v !== undefined) put.push([k, ...encodeValue(v)]);
    }
    if (keys.length === 0) return;
    const { host, store } = this;
    await this.w.write({
      locks: locksOf(host, u),
      run: async (c) => {
        await c.query(`${DELETE_ROWS} AND "key"=ANY($4::text[])`, [host, u, store, keys]);
        if (put.length > 0) await c.query(INSERT_ROWS, [host, u, store, put.map((r) => r[0]), put.map((r) => r[1]), put.map((r) => r[2])]);
      },
    });
  }

  async getAll(user: string | undefined): Promise<KeyvalData | undefined> {
    const u = user ?? "";
    return decodeRows((await this.w.read(SELECT_ROWS, [this.host, u, this.store], locksOf(this.host, u))) as unknown as Row[]);
  }

  users(): Promise<string[]> {
    return users(this.w, this.host, this.store);
  }
}
