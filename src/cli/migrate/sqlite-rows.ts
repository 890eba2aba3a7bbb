// What both SQLite ends of a migration share: rows as read, checked (SQLite
// keeps any type in any column: only text and integers are copied), and the
// counts and checksums of the verification, computed row by row.
import type Database from "better-sqlite3";
import { CliError } from "../args.js";
import { ARCHIVE_COLUMNS, type ArchiveRow, columnList, IS_STATE, PROSODY_COLUMNS, type ProsodyRow, rowDigest, type Summary } from "./model.js";

const PROSODY = columnList(PROSODY_COLUMNS);
const ARCHIVE = columnList(ARCHIVE_COLUMNS);
const NOT_STATE = `NOT (${IS_STATE})`;

/** A "prosody" row as read (raw), checked: six strings. */
export function prosodyRow(r: unknown[], option: string): ProsodyRow {
  for (let i = 0; i < 6; i++) {
    if (typeof r[i] !== "string") {
      throw new CliError(`${option}: a "prosody" row (host ${JSON.stringify(r[0])}, store ${JSON.stringify(r[2])}) has a ${PROSODY_COLUMNS[i]} that is not text`);
    }
  }
  return r as ProsodyRow;
}

/** A "prosodyarchive" row as read (raw, with safe integers on), checked and with numbers for its integers. */
export function archiveRow(r: unknown[], option: string): ArchiveRow {
  const int = (v: unknown, col: string): number => {
    if (typeof v === "bigint" && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    throw new CliError(`${option}: a "prosodyarchive" row (sort_id ${String(r[0])}) has a "${col}" that is not an integer mamkit can copy: ${String(v)}`);
  };
  const row = [int(r[0], "sort_id"), r[1], r[2], r[3], r[4], int(r[5], "when"), r[6], r[7], r[8]];
  for (const i of [1, 2, 3, 4, 6, 7, 8]) {
    if (typeof row[i] !== "string") throw new CliError(`${option}: a "prosodyarchive" row (sort_id ${row[0]}) has a "${ARCHIVE_COLUMNS[i]}" that is not text`);
  }
  return row as ArchiveRow;
}

/** The highest position the archive's AUTOINCREMENT sequence gave out (0 without one). */
export function sequenceOf(db: Database.Database): number {
  const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='sqlite_sequence'").get();
  if (!has) return 0;
  const seq = db.prepare("SELECT seq FROM sqlite_sequence WHERE name='prosodyarchive'").pluck().get();
  return typeof seq === "number" ? seq : 0;
}

/** Counts and checksums of both tables (the state row left out), computed row by row. */
export function summaryOf(db: Database.Database, option: string): Summary {
  let prosody = 0n;
  let prosodyRows = 0;
  for (const r of db.prepare(`SELECT ${PROSODY} FROM "prosody" WHERE ${NOT_STATE}`).raw(true).iterate()) {
    prosody += rowDigest(prosodyRow(r as unknown[], option));
    prosodyRows++;
  }
  let archive = 0n;
  let archiveRows = 0;
  let maxSortId: number | null = null;
  for (const r of db.prepare(`SELECT ${ARCHIVE} FROM "prosodyarchive"`).raw(true).safeIntegers(true).iterate()) {
    const row = archiveRow(r as unknown[], option);
    archive += rowDigest(row);
    archiveRows++;
    if (maxSortId === null || row[0] > maxSortId) maxSortId = row[0];
  }
  return {
    prosody: { rows: prosodyRows, checksum: BigInt.asUintN(64, prosody) },
    archive: { rows: archiveRows, checksum: BigInt.asUintN(64, archive), maxSortId },
    sequence: sequenceOf(db),
  };
}

export const count = (db: Database.Database, sql: string) => Number(db.prepare(sql).pluck().get());
