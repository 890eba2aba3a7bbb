// Finding a page of an archive for a MAM query (XEP-0313 §4 with RSM,
// XEP-0059): the query's filters, id bounds and paging onto the store.
import type { ArchiveItem, ArchiveQuery, ArchiveStore } from "../storage/types.js";
import { bareOf } from "../xmpp/jid.js";
import { StanzaError } from "../xmpp/stanza.js";
import type { MamQuery } from "./query.js";

export interface Page {
  items: ArchiveItem[];
  total: number | undefined;
  complete: boolean;
}

async function posOf(archive: ArchiveStore, user: string, id: string, what: string): Promise<number> {
  const item = await archive.get(user, id);
  if (!item) throw new StanzaError("item-not-found", `${what}: no archived message with this id`);
  return item.pos;
}

/** The peer's full JID of an archived message (the other side of the conversation). */
function peerOf(item: ArchiveItem, userBare: string): string {
  const from = (item.stanza.attrs.from as string | undefined) ?? "";
  return bareOf(from) === userBare ? ((item.stanza.attrs.to as string | undefined) ?? userBare) : from;
}

/**
 * One page of `user`'s archive for a query: at most `max` items in archive
 * order, whether it is the last page, and the total where asked for (or always
 * with `includeTotal`, as Prosody's mam_include_total).
 */
export async function findPage(archive: ArchiveStore, userBare: string, user: string, q: MamQuery, max: number, includeTotal: boolean): Promise<Page> {
  const base: ArchiveQuery = {};
  if (q.with) base.with = q.with.bare;
  if (q.start !== undefined) base.start = q.start;
  if (q.end !== undefined) base.end = q.end;
  if (q.ids) {
    const unique = [...new Set(q.ids)];
    const found = (await archive.find(user, { ids: unique })).items.length;
    if (found !== unique.length) throw new StanzaError("item-not-found", "field 'ids': an id is not in the archive");
    base.ids = unique;
  }
  let lo = Number.NEGATIVE_INFINITY;
  let hi = Number.POSITIVE_INFINITY;
  if (q.afterId !== undefined) lo = Math.max(lo, await posOf(archive, user, q.afterId, "field 'after-id'"));
  if (q.beforeId !== undefined) hi = Math.min(hi, await posOf(archive, user, q.beforeId, "field 'before-id'"));
  if (q.after !== undefined) lo = Math.max(lo, await posOf(archive, user, q.after, "RSM <after/>"));
  if (q.before) hi = Math.min(hi, await posOf(archive, user, q.before, "RSM <before/>"));
  const reverse = q.before !== undefined;
  const wantTotal = includeTotal || max === 0;
  const range: ArchiveQuery = { ...base, reverse };
  if (lo !== Number.NEGATIVE_INFINITY) range.afterPos = lo;
  if (hi !== Number.POSITIVE_INFINITY) range.beforePos = hi;

  let items: ArchiveItem[];
  let total: number | undefined;
  if (q.with && !q.with.isBare) {
    // A full JID matches only that full JID (XEP-0313 §4.1.1; unlike Prosody,
    // which widens it to the bare JID): filter on the stored stanzas.
    const full = q.with.full;
      const matches = (it: ArchiveItem) => peerOf(it, userBare) === full;
    if (wantTotal) total = (await archive.find(user, base)).items.filter(matches).length;
    items = [];
    const chunk = Math.max(64, max + 1);
    let cursor = { ...range };
    while (items.length < max + 1 && max > 0) {
      const page = (await archive.find(user, { ...cursor, limit: chunk })).items;
      for (const it of page) if (matches(it) && items.length < max + 1) items.push(it);
      if (page.length < chunk) break;
      const lastPos = page[page.length - 1]!.pos;
      cursor = reverse ? { ...cursor, beforePos: lastPos } : { ...cursor, afterPos: lastPos };
    }
  } else {
    const page = await archive.find(user, { ...range, limit: max === 0 ? 0 : max + 1, total: wantTotal });
    items = page.items;
    total = page.total;
  }
  let complete: boolean;
  if (max === 0) complete = total === 0;
  else {
    complete = items.length <= max;
    if (!complete) items = items.slice(0, max);
  }
  if (reverse) items.reverse(); // archive order
  return { items, total, complete };
}
