// What `mamkit migrate` moves and how it keeps track: the rows of Prosody's
// two tables as plain arrays, the two ends of a migration (a source that is
// only read, a destination written in transactions), the state row kept in
// the destination while a migration is unfinished, and the per-row digest the
// verification adds up on both sides.
import { createHash } from "node:crypto";
import { CliError } from "../args.js";

/** A failure that a rerun may not meet again: a connection lost, a database busy. */
export class Transient extends CliError {}

/** A row of "prosody": host, user, store, key, type, value. */
export type ProsodyRow = [string, string, string, string, string, string];
/** A row of "prosodyarchive": sort_id, host, user, store, key, when, with, type, value. */
export type ArchiveRow = [number, string, string, string, string, number, string, string, string];

export const PROSODY_COLUMNS = ["host", "user", "store", "key", "type", "value"] as const;
export const ARCHIVE_COLUMNS = ["sort_id", "host", "user", "store", "key", "when", "with", "type", "value"] as const;
/** Quoted, comma-separated, for SELECT and INSERT lists. */
export const columnList = (cols: readonly string[]) => cols.map((c) => `"${c}"`).join(",");

/**
 * The state row: a "prosody" row of host "" (Prosody never reads a host
 * without a name), present in the destination only while a migration into it
 * is unfinished.
 */
export const STATE = { host: "", user: "", store: "mamkit_migrate", key: "state", type: "json" } as const;
/** SQL that matches the state row (the same text on SQLite and PostgreSQL). */
export const IS_STATE = `"host"='' AND "user"='' AND "store"='${STATE.store}' AND "key"='${STATE.key}'`;

export interface MigrationState {
  version: 1;
  /** The source, as `Endpoint.identity` names it. */
  source: string;
  /** When the migration began (ISO 8601). */
  started: string;
  /** Rows of "prosody" copied (all of them: that table is copied in one transaction). */
  prosodyRows: number;
  /** Archive rows copied so far. */
  archiveRows: number;
  /** The highest sort_id copied so far (null: none yet); the next chunk starts after it. */
  after: number | null;
}

export const encodeState = (s: MigrationState): string => JSON.stringify(s);

export function decodeState(text: string): MigrationState {
  let s: Partial<MigrationState>;
  try {
    s = JSON.parse(text) as Partial<MigrationState>;
  } catch {
    throw new Error("its value is not JSON");
  }
  const count = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
  if (
    s?.version !== 1 ||
    typeof s.source !== "string" ||
    typeof s.started !== "string" ||
    !count(s.prosodyRows) ||
    !count(s.archiveRows) ||
    !(s.after === null || (typeof s.after === "number" && Number.isSafeInteger(s.after)))
  ) {
    throw new Error("it is not a state this version of mamkit wrote");
  }
  return s as MigrationState;
}

/** Counts and checksums of one side (the state row left out), and its archive's sequence. */
export interface Summary {
  prosody: { rows: number; checksum: bigint };
  archive: { rows: number; checksum: bigint; maxSortId: number | null };
  /** The highest archive position the sequence gave out (0: none; a row deleted since may have had it). */
  sequence: number;
}

/** What the destination holds before a run, the state row aside. */
export interface Inspection {
  prosodyRows: number;
  archiveRows: number;
  maxSortId: number | null;
  /** The state row's value, if there is one. */
  state: string | undefined;
}

/** The side that is read, never written. */
export interface Source {
  readonly spec: string;
  archiveRows(): Promise<number>;
  prosodyRows(): Promise<number>;
  /** The state row, when the source is itself the destination of an unfinished migration. */
  state(): Promise<string | undefined>;
  /** Every row of "prosody", in batches. */
  prosody(batch: number): AsyncIterable<ProsodyRow[]>;
  /** Up to `limit` archive rows with sort_id above `after` (null: from the first), by sort_id. */
  archiveAfter(after: number | null, limit: number): Promise<ArchiveRow[]>;
  summary(): Promise<Summary>;
  close(): Promise<void>;
}

/** The side that is written, each step one transaction. */
export interface Destination {
  readonly spec: string;
  inspect(): Promise<Inspection>;
  /**
   * One transaction: checks the destination is still empty, copies every row
   * of "prosody" and inserts the state row `state(rowsCopied)`.
   */
  start(rows: AsyncIterable<ProsodyRow[]>, state: (rows: number) => string, copied: (rows: number) => void): Promise<number>;
  /** One transaction: the state row is moved from `from` to `to` (else it fails), and the rows are inserted. */
  chunk(rows: ArchiveRow[], from: string, to: string): Promise<void>;
  /** After the last chunk: completes the schema (indexes left for the end). */
  complete(): Promise<void>;
  /** Moves the archive's sequence to `highest`, so that the next position given out is above it. */
  setSequence(highest: number): Promise<void>;
  summary(): Promise<Summary>;
  /** Deletes the state row (it must still read `state`), durably. */
  finish(state: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * A row's digest: the first 8 bytes of SHA-256 over its fields, each written
 * as its length in UTF-8 bytes, ":", and the field (integers in decimal), as
 * an unsigned 64-bit number. Summed mod 2^64 over a table: the same multiset
 * of rows gives the same sum in any order. postgres.ts computes the same in SQL.
 */
export function rowDigest(fields: readonly (string | number)[]): bigint {
  let text = "";
  for (const f of fields) {
    const s = typeof f === "number" ? String(f) : f;
    text += `${Buffer.byteLength(s, "utf8")}:${s}`;
  }
  return createHash("sha256").update(text, "utf8").digest().readBigUInt64BE(0);
}

export const MOD64 = (n: bigint) => BigInt.asUintN(64, n);
export const hex64 = (n: bigint) => n.toString(16).padStart(16, "0");
