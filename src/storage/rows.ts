// keyval and map stores over Prosody's `prosody` table rows (host, user,
// store, key, type, value). Both drivers provide the rows; the table logic —
// including Prosody's empty-key row for non-string keys — is written once here.
import { decodeValue, encodeJson, encodeValue } from "./codec.js";
import type { GroupCommit } from "./group-commit.js";
import {
  type KeyValueStore,
  type KeyvalData,
  type MapStore,
  NON_STRING_KEYS,
  StorageError,
  type StoredValue,
} from "./types.js";

export interface Row {
  key: string;
  type: string;
  value: string;
}

/** The row operations a driver provides. `user` is "" for host-wide data, as in Prosody. */
export interface RowBackend {
  rows(host: string, user: string, store: string): Row[];
  row(host: string, user: string, store: string, key: string): Row | undefined;
  deleteRows(host: string, user: string, store: string): void;
  deleteRow(host: string, user: string, store: string, key: string): void;
  insertRow(host: string, user: string, store: string, key: string, type: string, value: string): void;
  users(host: string, store: string): string[];
  /** Where writes go: the driver's group commit. */
  readonly writes: GroupCommit;
}

/** A synchronous read as a promise (a throw becomes a rejection). */
export function read<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err);
  }
}

export function decodeRows(rows: readonly Row[]): KeyvalData | undefined {
  if (rows.length === 0) return undefined;
  const result: KeyvalData = {};
  for (const row of rows) {
    const v = decodeValue(row.type, row.value);
    if (row.key !== "") {
      result[row.key] = v;
    } else if (typeof v === "object" && v !== null && !Array.isArray(v)) {
      // Prosody's row for keys that are not non-empty strings
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (k === "__hash" && Array.isArray(x)) {
          const m = result[NON_STRING_KEYS] ?? new Map<unknown, unknown>();
          for (let i = 0; i + 1 < x.length; i += 2) m.set(x[i], x[i + 1]);
          result[NON_STRING_KEYS] = m;
        } else {
          result[k] = x;
        }
      }
    }
  }
  return result;
}

export function checkKey(key: string): void {
  if (typeof key !== "string" || key === "") throw new StorageError("bad-value", "map keys are non-empty strings");
}

/** A keyval table as Prosody's rows (key, type, value): non-string keys in the empty-key row. */
export function encodeTable(data: KeyvalData | undefined): [string, string, string][] {
  const rows: [string, string, string][] = [];
  if (!data) return rows;
  const extra: Record<string, unknown> = {};
  let hasExtra = false;
  for (const [k, v] of Object.entries(data)) {
    if (v === undefined) continue;
    if (k === "") {
      extra[k] = v;
      hasExtra = true;
    } else rows.push([k, ...encodeValue(v)]);
  }
  const m = data[NON_STRING_KEYS];
  if (m && m.size > 0) {
    extra.__hash = [...m].flat(1);
    hasExtra = true;
  }
  if (hasExtra) rows.push(["", "json", encodeJson(extra)]);
  return rows;
}

export class RowKeyValueStore implements KeyValueStore {
  constructor(
    private readonly b: RowBackend,
    private readonly host: string,
    private readonly store: string,
  ) {}

  get(user: string | undefined): Promise<KeyvalData | undefined> {
    return read(() => decodeRows(this.b.rows(this.host, user ?? "", this.store)));
  }

  set(user: string | undefined, data: KeyvalData | undefined): Promise<void> {
    try {
      return this.write(user ?? "", data);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private write(u: string, data: KeyvalData | undefined): Promise<void> {
    // encode everything first: a value that cannot be stored leaves the old data intact
    const rows = encodeTable(data);
    return this.b.writes.write(() => {
      this.b.deleteRows(this.host, u, this.store);
      for (const [k, t, v] of rows) this.b.insertRow(this.host, u, this.store, k, t, v);
    });
  }

  users(): Promise<string[]> {
    return read(() => this.b.users(this.host, this.store));
  }
}

export class RowMapStore implements MapStore {
  constructor(
    private readonly b: RowBackend,
    private readonly host: string,
    private readonly store: string,
  ) {}

  get(user: string | undefined, key: string): Promise<StoredValue | undefined> {
    return read(() => {
      checkKey(key);
      const row = this.b.row(this.host, user ?? "", this.store, key);
      return row === undefined ? undefined : decodeValue(row.type, row.value);
    });
  }

  set(user: string | undefined, key: string, value: StoredValue | undefined): Promise<void> {
    return this.setKeys(user, { [key]: value });
  }

  setKeys(user: string | undefined, data: Record<string, StoredValue | undefined>): Promise<void> {
    const u = user ?? "";
    let entries: (readonly [string, readonly [string, string] | undefined])[];
    try {
      entries = Object.entries(data).map(([k, v]) => {
        checkKey(k);
        return [k, v === undefined ? undefined : encodeValue(v)] as const;
      });
    } catch (err) {
      return Promise.reject(err);
    }
    return this.b.writes.write(() => {
      for (const [k, enc] of entries) {
        this.b.deleteRow(this.host, u, this.store, k);
        if (enc) this.b.insertRow(this.host, u, this.store, k, enc[0], enc[1]);
      }
    });
  }

  getAll(user: string | undefined): Promise<KeyvalData | undefined> {
    return read(() => decodeRows(this.b.rows(this.host, user ?? "", this.store)));
  }

  users(): Promise<string[]> {
    return read(() => this.b.users(this.host, this.store));
  }
}
