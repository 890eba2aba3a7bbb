// Archive filters shared by the memory driver (the SQLite driver says the same in SQL).

/** Archive timestamps have one-second resolution, as in Prosody's SQL schema. */
export function toSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}

export interface ItemFilter {
  start?: number;
  end?: number;
  with?: string;
}

/** start/end are inclusive bounds in ms; `ids` is the set form of the query's ids. */
export function itemMatches(
  whenSec: number,
  withJid: string,
  id: string,
  q: ItemFilter,
  ids: ReadonlySet<string> | undefined,
): boolean {
  if (q.start !== undefined && whenSec * 1000 < q.start) return false;
  if (q.end !== undefined && whenSec * 1000 > q.end) return false;
  if (q.with !== undefined && withJid !== q.with) return false;
  if (ids !== undefined && !ids.has(id)) return false;
  return true;
}
