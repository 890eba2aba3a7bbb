// mam's face for other modules: the stanza meta it sets on what it archived,
// and its events (typed in EventPayloads by declaration merging).
import type { Element } from "@xmpp/xml";
import type { Session } from "../core/session.js";
import { getMeta, setMeta } from "../xmpp/stanza.js";
import type { MamQuery } from "./query.js";

/** What mam attaches to a message it archived (never serialised): where it lies, in whose archive. */
export interface ArchivedStanza {
  /** The archive's owner: a localpart … */
  readonly user: string;
  /** … on this host (positions are numbered across hosts). */
  readonly host: string;
  readonly id: string;
  readonly pos: number;
  /** The owner's previous archive position, where the store knew it (ArchiveRef.prev): none of the owner's items lies between. */
  readonly prev: number | undefined;
}

/** A message a local user sent that went into the sender's archive. */
export interface SentArchived {
  readonly user: string;
  readonly id: string;
  readonly pos: number;
}

const ARCHIVED = "mam:archived";

/** The record of a delivered message archived for its recipient (or of a carbon copy of a sent one, for the sender). */
export function archivedOf(stanza: Element): ArchivedStanza | undefined {
  return getMeta<ArchivedStanza>(stanza, ARCHIVED);
}

/**
 * Attaches the record (replacing any earlier one, so a stanza archived twice
 * keeps no stale field), and the five single keys below, kept as read-only
 * views for embedders who read them.
 */
export function markArchived(stanza: Element, rec: ArchivedStanza): void {
  setMeta(stanza, ARCHIVED, rec);
  setMeta(stanza, META_ARCHIVE_ID, rec.id);
  setMeta(stanza, META_ARCHIVE_POS, rec.pos);
  setMeta(stanza, META_ARCHIVE_USER, rec.user);
  setMeta(stanza, META_ARCHIVE_HOST, rec.host);
  setMeta(stanza, META_ARCHIVE_PREV, rec.prev);
}

/** Where a message a local user sent went in the sender's archive. */
export function sentArchiveOf(stanza: Element): SentArchived | undefined {
  return getMeta<SentArchived>(stanza, META_SENT_ARCHIVE);
}

export function markSentArchived(stanza: Element, rec: SentArchived): void {
  setMeta(stanza, META_SENT_ARCHIVE, rec);
}

/** Read-only views of ArchivedStanza, as single stanza meta keys (what mamkit had before the record). */
export const META_ARCHIVE_ID = "mam:id";
export const META_ARCHIVE_POS = "mam:pos";
export const META_ARCHIVE_USER = "mam:user";
/** The host of that archive (`mam:user` is a localpart; positions are numbered across hosts). */
export const META_ARCHIVE_HOST = "mam:host";
/** The position of the recipient's previous archive item, where the store knew it (ArchiveRef.prev). */
export const META_ARCHIVE_PREV = "mam:prev";
/** Stanza meta set on a message a local user sent that went into the sender's archive: `{ id, pos, user }`. */
export const META_SENT_ARCHIVE = "mam:sent";

/** Data of `archive-message-added`. */
export interface ArchiveMessageAdded {
  origin: Session | undefined;
  stanza: Element;
  user: string;
  id: string;
  pos: number;
  /** The position of the user's previous item, where the store knew it: none of the user's items lies between. */
  prev?: number;
  when: number;
  with: string;
  direction: "incoming" | "outgoing";
}

/** Data of `archive-query`, fired after the result messages were handed to the session (before <fin/>). */
export interface ArchiveQueryEvent {
  origin: Session;
  query: MamQuery;
  /** False only for a query that used nothing but RSM paging and whose results all reached the session. */
  filtered: boolean;
  /** The results handed to the session (a `stanzas/out` filter can drop some), in archive order. */
  items: { id: string; pos: number }[];
  complete: boolean;
}

/** Data of `archive-should-store`: return false to veto, true to force, or change `should_store`. */
export interface ArchiveShouldStore {
  stanza: Element;
  origin: Session | undefined;
  user: string;
  with: string;
  direction: "incoming" | "outgoing";
  should_store: boolean;
  reason: string;
}

declare module "../core/event-payloads.js" {
  interface EventPayloads {
    "archive-should-store": ArchiveShouldStore;
    "archive-message-added": ArchiveMessageAdded;
    "archive-query": ArchiveQueryEvent;
  }
}
