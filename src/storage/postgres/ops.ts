// What the PostgreSQL driver's writes are: rows to append, their results,
// and one write of the group commit (writer.ts) or of a transaction
// (transactions.ts).
import type { Queryable } from "./connection.js";

export type { Queryable };

/** A row for prosodyarchive, appended with its neighbours in one statement. */
export interface AppendRow {
  host: string;
  user: string;
  store: string;
  key: string;
  when: number;
  with: string;
  value: string;
}

/** Where an appended row went: its position, and the user's one before it. */
export interface AppendResult {
  pos: number;
  prev: number | undefined;
}

export type WriteOp<T> =
  | { locks: readonly number[]; run: (c: Queryable) => Promise<T>; append?: undefined }
  | { locks: readonly number[]; append: AppendRow; run?: undefined };
