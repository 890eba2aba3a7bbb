// The verification at the end of a migration: both tables' row counts and
// checksums (model.ts rowDigest, summed mod 2^64: order-independent,
// duplicates counted), the highest sort_id, and the destination's sequence,
// which must stand at the source's highest position given out.
import { hex64, type Summary } from "./model.js";

/** The highest archive position the source gave out: the destination's sequence must stand there. */
export const highestOf = (s: Summary) => Math.max(s.sequence, s.archive.maxSortId ?? 0);

/** What differs between the two sides, in words (empty: the copy is exact). */
export function differences(src: Summary, dst: Summary): string[] {
  const out: string[] = [];
  const side = (name: string, d: number | string | null, s: number | string | null) =>
    out.push(`${name}: ${d ?? "none"} in the destination, ${s ?? "none"} in the source`);
  for (const t of ["prosody", "archive"] as const) {
    const name = t === "archive" ? "prosodyarchive" : t;
    if (src[t].rows !== dst[t].rows) side(`${name} rows`, dst[t].rows, src[t].rows);
    else if (src[t].checksum !== dst[t].checksum) side(`${name} checksum`, hex64(dst[t].checksum), hex64(src[t].checksum));
  }
  if (src.archive.maxSortId !== dst.archive.maxSortId) side("highest sort_id", dst.archive.maxSortId, src.archive.maxSortId);
  const highest = highestOf(src);
  if (dst.sequence !== highest) out.push(`the destination's archive sequence stands at ${dst.sequence}, not at ${highest} (the source's highest position)`);
  return out;
}

/** What was verified, for the summary. */
export function verifiedText(s: Summary): string {
  const highest = highestOf(s);
  const range = s.archive.maxSortId === null ? "" : `, highest sort_id ${s.archive.maxSortId}`;
  return [
    "verified (the same on both sides):",
    `  prosody          ${s.prosody.rows} rows, checksum ${hex64(s.prosody.checksum)}`,
    `  prosodyarchive   ${s.archive.rows} rows, checksum ${hex64(s.archive.checksum)}${range}`,
    `  sequence         positions up to ${highest} given out: the next one is ${highest + 1}`,
  ].join("\n");
}
