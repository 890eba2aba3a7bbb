// mod_mam: XEP-0313 Message Archive Management (urn:xmpp:mam:2 + #extended),
// XEP-0359 stanza-ids, XEP-0441 preferences, expiry. Prosody 0.12's mod_mam
// in behaviour, except where noted "unlike Prosody".
import { domainToASCII } from "node:url";
import type { Element } from "@xmpp/xml";
import { defineModule } from "../core/module.js";
import type { OptionDecls } from "../core/options.js";
import { StorageError, type ArchiveItem, type ArchiveQuery, type ArchiveRef } from "../storage/types.js";
import type { StanzaEvent } from "../core/delivery.js";
import type { Session } from "../core/session.js";
import { bareOf, localOf } from "../xmpp/jid.js";
import {
  cloneStanza,
  getMeta,
  iqResult,
  NS_CLIENT,
  removeChildren,
  setMeta,
  StanzaError,
  xml,
} from "../xmpp/stanza.js";
import { allows, type DefaultPolicy, type Prefs, prefsFromElement, prefsFromStored, prefsToElement, prefsToStored } from "./prefs.js";
import { isUnfiltered, type MamQuery, NS_DATA, NS_MAM, NS_RSM, parseQuery } from "./query.js";
import { shouldStore } from "./should-store.js";

export { NS_MAM } from "./query.js";
export const NS_SID = "urn:xmpp:sid:0";
export const NS_FORWARD = "urn:xmpp:forward:0";
export const NS_DELAY = "urn:xmpp:delay";
export const NS_CHATSTATES = "http://jabber.org/protocol/chatstates";

/** Stanza meta set on a delivered message that was archived for its recipient. */
export const META_ARCHIVE_ID = "mam:id";
export const META_ARCHIVE_POS = "mam:pos";
export const META_ARCHIVE_USER = "mam:user";
/** The host of that archive (`mam:user` is a localpart; positions are numbered across hosts). */
export const META_ARCHIVE_HOST = "mam:host";
/** The position of the recipient's previous archive item, where the store knew it (ArchiveRef.prev). */
export const META_ARCHIVE_PREV = "mam:prev";
/** Stanza meta set on a message a local user sent that went into the sender's archive: `{ id, pos, user }`. */
export const META_SENT_ARCHIVE = "mam:sent";

const DEFAULT_PAGE = 20;

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

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.000Z$/, "Z");
}

/** mam's options, each declared once (smart retention reads archive_expires_after with this). */
export const MAM_OPTIONS = {
  default_archive_policy: { type: "enum", values: [true, false, "roster"], default: true },
  mam_smart_enable: { type: "boolean", default: false },
  max_archive_query_results: { type: "number", min: 1, integer: true, default: 50 },
  mam_include_total: { type: "boolean", default: true },
  archive_expires_after: { type: "period", default: "1w" },
  dont_archive_namespaces: { type: "list", default: [NS_CHATSTATES] },
  storage_archive_item_limit: { type: "number", min: 1, integer: true },
  archive_cleanup_batch_size: { type: "number", min: 1, integer: true, default: 1000 },
} as const satisfies OptionDecls;

export default defineModule(
  "mam",
  (module) => {
    const host = module.hostView;
    // (the hosts' names in the form `by` is compared in: IDNA ASCII)
    const served = (domain: string) => module.servedDomains().some((h) => (domainToASCII(h) || h) === domain);
    const isServersStanzaId = (el: Element) => isLocalStanzaId(el, served);
    const archive = module.openStore("archive", "archive");
    const prefsStore = module.openStore("archive_prefs", "keyval");
    const roster = module.openStore("roster", "map");

    const o = module.options;
    const globalPolicy = o.default_archive_policy;
    const defaultPolicy: DefaultPolicy = globalPolicy === true ? "always" : globalPolicy === false ? "never" : "roster";
    const smartEnable = o.mam_smart_enable;
    const maxResults = o.max_archive_query_results;
    const includeTotal = o.mam_include_total;
    const expiresAfter = o.archive_expires_after;
    const dontArchive = new Set(o.dont_archive_namespaces);
    const itemLimit = o.storage_archive_item_limit;
    const batchSize = o.archive_cleanup_batch_size;

    // ---- preferences ---------------------------------------------------------------
    function storedPrefs(user: string) {
      return prefsStore.get(user);
    }
    function getPrefs(user: string): Prefs {
      const stored = storedPrefs(user);
      // mam_smart_enable: a user who never used MAM is not archived
      return prefsFromStored(stored, smartEnable && stored === undefined ? "never" : defaultPolicy);
    }
    function mayArchive(user: string, peerFull: string, peerBare: string): boolean {
      return allows(getPrefs(user), peerFull, peerBare, () => roster.get(user, peerBare) !== undefined);
    }

    // ---- archiving -------------------------------------------------------------------
    const counts = new Map<string, number>(); // per-user item counts, when a quota is set

    function appendWithQuota(user: string, stanza: Element, peerBare: string) {
      if (itemLimit !== undefined) {
        let n = counts.get(user) ?? archive.summary(user).count;
        if (n >= itemLimit && Number.isFinite(expiresAfter)) {
          n -= archive.delete(user, { end: module.clock.now() - expiresAfter * 1000 - 1 });
        }
        if (n >= itemLimit) {
          // unlike Prosody (which truncates to a fraction of the limit), drop only what the new item needs
          const drop = n - itemLimit + 1;
          n -= archive.delete(user, { limit: drop });
          module.log.info({ user, dropped: drop }, "archive over storage_archive_item_limit: oldest items removed");
        }
        counts.set(user, n + 1);
      }
      return archive.append(user, { stanza, when: module.clock.now(), with: peerBare });
    }

    function archiveFor(
      user: string,
      stanza: Element,
      peerFull: string,
      origin: Session | undefined,
      direction: "incoming" | "outgoing",
    ): ArchiveRef | undefined {
      const peerBare = bareOf(peerFull);
      const [ok, reason] = shouldStore(stanza);
      const payload: ArchiveShouldStore = { stanza, origin, user, with: peerBare, direction, should_store: ok, reason };
      const verdict = module.fire("archive-should-store", payload);
      const store = typeof verdict === "boolean" ? verdict : payload.should_store;
      if (!store) {
        module.log.debug({ user, reason: payload.reason }, "not archiving");
        return undefined;
      }
      if (!mayArchive(user, peerFull, peerBare)) {
        module.log.debug({ user }, "not archiving: preferences");
        return undefined;
      }
      const copy = cloneStanza(stanza);
      // No stored message keeps a stanza-id in the name of this server or its
      // users: in an incoming one it is forged, and an outgoing one was written
      // by the client, which gives no stanza-ids (XEP-0359).
      const removed =
        removeChildren(copy, (c) => dontArchive.has(c.getNS() ?? NS_CLIENT)) + removeChildren(copy, isServersStanzaId);
      if (removed > 0 && verdict !== true && !shouldStore(copy)[0]) {
        module.log.debug({ user }, "not archiving: nothing archivable left");
        return undefined;
      }
      const ref = appendWithQuota(user, copy, peerBare);
      module.fire("archive-message-added", {
        origin,
        stanza,
        user,
        id: ref.id,
        pos: ref.pos,
        prev: ref.prev,
        when: ref.when,
        with: peerBare,
        direction,
      } satisfies ArchiveMessageAdded);
      return ref;
    }

    // Incoming: into the recipient's archive, with = bare sender.
    const onIncoming = (data: StanzaEvent) => {
      const { stanza, origin } = data;
      const to = stanza.attrs.to as string | undefined;
      const user = to === undefined ? origin?.jid?.local : localOf(to);
      if (user === undefined || !host.userExists(user)) return undefined;
      const userBare = `${user}@${host.name}`;
      // A stanza-id claiming to be ours that someone else put in is forged:
      // unlike Prosody, removed from the delivered copy as well as the stored one.
      removeChildren(stanza, isServersStanzaId);
      const from = (stanza.attrs.from as string | undefined) ?? host.name;
      const ref = archiveFor(user, stanza, from, origin, "incoming");
      if (ref) {
        stanza.c("stanza-id", { xmlns: NS_SID, by: userBare, id: ref.id });
        setMeta(stanza, META_ARCHIVE_ID, ref.id);
        setMeta(stanza, META_ARCHIVE_POS, ref.pos);
        setMeta(stanza, META_ARCHIVE_USER, user);
        setMeta(stanza, META_ARCHIVE_HOST, host.name);
        setMeta(stanza, META_ARCHIVE_PREV, ref.prev); // always, so a stanza archived twice never keeps a stale one
      }
      return undefined;
    };
    module.hook("message/bare", onIncoming, 0);
    module.hook("message/full", onIncoming, 0);

    // Outgoing: into the sender's archive, with = bare recipient. A message to
    // the sender's own account is archived once, by the incoming side.
    const onOutgoing = (data: StanzaEvent) => {
      const { stanza, origin } = data;
      // XEP-0359 §5: a client never writes a stanza-id in the name of this server or
      // one of its accounts (the sender's own included): whatever it wrote is removed
      // before the message goes anywhere, even where no archive adds ours
      if (origin) removeChildren(stanza, isServersStanzaId);
      const to = stanza.attrs.to as string | undefined;
      const user = origin?.jid?.local;
      if (!origin || user === undefined || to === undefined || data.to_self) return undefined;
      if (bareOf(to) === origin.jid!.bare) return undefined;
      const ref = archiveFor(user, stanza, to, origin, "outgoing");
      if (ref) setMeta(stanza, META_SENT_ARCHIVE, { id: ref.id, pos: ref.pos, user });
      return undefined;
    };
    module.hook("pre-message/bare", onOutgoing, 0);
    module.hook("pre-message/full", onOutgoing, 0);
    module.hook("pre-message/host", onOutgoing, 0);

    // Nobody online: the message is in the archive, so it is kept, not bounced.
    module.hook(
      "message/offline/handle",
      ({ stanza }: StanzaEvent) => (getMeta(stanza, META_ARCHIVE_ID) !== undefined ? true : undefined),
      -1,
    );

    // ---- queries ---------------------------------------------------------------------
    function posOf(user: string, id: string, what: string): number {
      const item = archive.get(user, id);
      if (!item) throw new StanzaError("item-not-found", `${what}: no archived message with this id`);
      return item.pos;
    }

    /** The peer's full JID of an archived message (the other side of the conversation). */
    function peerOf(item: ArchiveItem, userBare: string): string {
      const from = (item.stanza.attrs.from as string | undefined) ?? "";
      return bareOf(from) === userBare ? ((item.stanza.attrs.to as string | undefined) ?? userBare) : from;
    }

    function runQuery(user: string, q: MamQuery, max: number) {
      const base: ArchiveQuery = {};
      if (q.with) base.with = q.with.bare;
      if (q.start !== undefined) base.start = q.start;
      if (q.end !== undefined) base.end = q.end;
      if (q.ids) {
        const unique = [...new Set(q.ids)];
        const found = archive.find(user, { ids: unique }).items.length;
        if (found !== unique.length) throw new StanzaError("item-not-found", "field 'ids': an id is not in the archive");
        base.ids = unique;
      }
      let lo = Number.NEGATIVE_INFINITY;
      let hi = Number.POSITIVE_INFINITY;
      if (q.afterId !== undefined) lo = Math.max(lo, posOf(user, q.afterId, "field 'after-id'"));
      if (q.beforeId !== undefined) hi = Math.min(hi, posOf(user, q.beforeId, "field 'before-id'"));
      if (q.after !== undefined) lo = Math.max(lo, posOf(user, q.after, "RSM <after/>"));
      if (q.before) hi = Math.min(hi, posOf(user, q.before, "RSM <before/>"));
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
        const userBare = `${user}@${host.name}`;
        const matches = (it: ArchiveItem) => peerOf(it, userBare) === full;
        if (wantTotal) total = archive.find(user, base).items.filter(matches).length;
        items = [];
        const chunk = Math.max(64, max + 1);
        let cursor = { ...range };
        while (items.length < max + 1 && max > 0) {
          const page = archive.find(user, { ...cursor, limit: chunk }).items;
          for (const it of page) if (matches(it) && items.length < max + 1) items.push(it);
          if (page.length < chunk) break;
          const lastPos = page[page.length - 1]!.pos;
          cursor = reverse ? { ...cursor, beforePos: lastPos } : { ...cursor, afterPos: lastPos };
        }
      } else {
        const page = archive.find(user, { ...range, limit: max === 0 ? 0 : max + 1, total: wantTotal });
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

    function onQuery({ origin, stanza }: StanzaEvent) {
      if (!origin?.jid) return undefined;
      const query = stanza.getChild("query", NS_MAM)!;
      const q = parseQuery(query);
      const user = origin.jid.local!;
      if (smartEnable && storedPrefs(user) === undefined) {
        prefsStore.set(user, prefsToStored({ default: defaultPolicy, always: [], never: [] }));
      }
      const max = Math.min(q.max ?? DEFAULT_PAGE, maxResults);
      let result: ReturnType<typeof runQuery>;
      try {
        result = runQuery(user, q, max);
      } catch (err) {
        if (err instanceof StorageError && err.code === "item-not-found") throw new StanzaError("item-not-found");
        throw err;
      }
      const { items, total, complete } = result;
      const sendOrder = q.flip ? items.slice().reverse() : items;
      const resultAttrs: Record<string, string> = { to: origin.jid.full };
      if (stanza.attrs.to !== undefined) resultAttrs.from = stanza.attrs.to as string;
      // what the session took: a `stanzas/out` filter may drop (or hold back) a result
      const sent = new Set<string>();
      for (const item of sendOrder) {
        const inner = item.stanza;
        inner.attrs.xmlns = NS_CLIENT;
        const ok = origin.send(
          xml(
            "message",
            resultAttrs,
            xml(
              "result",
              { xmlns: NS_MAM, queryid: q.queryId, id: item.id },
              xml("forwarded", { xmlns: NS_FORWARD }, xml("delay", { xmlns: NS_DELAY, stamp: stamp(item.when) }), inner),
            ),
          ),
        );
        if (ok) sent.add(item.id);
      }
      const handed = sent.size === items.length ? items : items.filter((i) => sent.has(i.id));
      module.fire("archive-query", {
        origin,
        query: q,
        // a page with a result missing is no longer a contiguous run of the archive
        filtered: !isUnfiltered(q) || handed.length < items.length,
        items: handed.map((i) => ({ id: i.id, pos: i.pos })),
        complete,
      } satisfies ArchiveQueryEvent);
      const set = xml("set", { xmlns: NS_RSM });
      if (items.length > 0) {
        set.c("first").t(items[0]!.id);
        set.c("last").t(items[items.length - 1]!.id);
      }
      if (total !== undefined) set.c("count").t(String(total));
      const fin = xml("fin", complete ? { xmlns: NS_MAM, complete: "true" } : { xmlns: NS_MAM }, set);
      origin.send(iqResult(stanza, fin));
      return true;
    }

    function formOf(): Element {
      const field = (v: string, type: string, ...children: Element[]) => xml("field", { var: v, type }, ...children);
      return xml(
        "query",
        { xmlns: NS_MAM },
        xml(
          "x",
          { xmlns: NS_DATA, type: "form" },
          field("FORM_TYPE", "hidden", xml("value", {}, NS_MAM)),
          field("with", "jid-single"),
          field("start", "text-single"),
          field("end", "text-single"),
          field("before-id", "text-single"),
          field("after-id", "text-single"),
          field(
            "ids",
            "list-multi", // XEP-0313 §4.1.5: list-multi, with an open XEP-0122 list
            xml("validate", { xmlns: "http://jabber.org/protocol/xdata-validate", datatype: "xs:string" }, xml("open")),
          ),
          field("include-groupchat", "boolean"),
        ),
      );
    }

    module.hook(`iq-set/self/${NS_MAM}:query`, onQuery);
    module.hook(`iq-get/self/${NS_MAM}:query`, ({ origin, stanza }: StanzaEvent) => {
      origin?.send(iqResult(stanza, formOf()));
      return true;
    });
    module.hook(`iq-get/self/${NS_MAM}:metadata`, ({ origin, stanza }: StanzaEvent) => {
      const s = archive.summary(origin!.jid!.local!);
      const md = xml("metadata", { xmlns: NS_MAM });
      if (s.first && s.last) {
        md.c("start", { id: s.first.id, timestamp: stamp(s.first.when) });
        md.c("end", { id: s.last.id, timestamp: stamp(s.last.when) });
      }
      origin?.send(iqResult(stanza, md));
      return true;
    });
    module.hook(`iq-get/self/${NS_MAM}:prefs`, ({ origin, stanza }: StanzaEvent) => {
      origin?.send(iqResult(stanza, prefsToElement(getPrefs(origin!.jid!.local!), NS_MAM)));
      return true;
    });
    module.hook(`iq-set/self/${NS_MAM}:prefs`, ({ origin, stanza }: StanzaEvent) => {
      const prefs = prefsFromElement(stanza.getChild("prefs", NS_MAM)!);
      const user = origin!.jid!.local!;
      prefsStore.set(user, prefsToStored(prefs));
      origin?.send(iqResult(stanza, prefsToElement(getPrefs(user), NS_MAM)));
      return true;
    });

    // Another account's archive: forbidden, and nothing of it is read.
    const forbidden = (data: StanzaEvent) => {
      if (data.to_self) return undefined; // the iq/self handlers take it
      throw new StanzaError("forbidden", "you can only access your own archive");
    };
    for (const what of ["query", "metadata", "prefs"]) {
      module.hook(`iq-get/bare/${NS_MAM}:${what}`, forbidden);
      module.hook(`iq-set/bare/${NS_MAM}:${what}`, forbidden);
    }

    // ---- disco, account deletion, expiry -------------------------------------------
    // Only accounts have archives, so only they advertise MAM (XEP-0313 §5.1: "only for
    // those JIDs that support it"); the server's own disco#info does not, as in Prosody.
    module.hook("account-disco-info", ({ reply }: { reply: Element }) => {
      for (const f of [NS_MAM, `${NS_MAM}#extended`, `${NS_MAM}#groupchat-field`, NS_SID]) reply.c("feature", { var: f });
      return undefined;
    });

    module.hook("user-deleted", ({ username }: { username: string }) => {
      archive.delete(username);
      prefsStore.set(username, undefined);
      counts.delete(username);
      return undefined;
    });

    if (Number.isFinite(expiresAfter)) {
      module.daily("archive expiry", async () => {
        const cutoff = module.clock.now() - expiresAfter * 1000 - 1; // strictly older than the period
        const started = Date.now();
        let deleted = 0;
        for (;;) {
          const n = archive.delete(null, { end: cutoff, limit: batchSize });
          deleted += n;
          if (n < batchSize) break;
          await new Promise((r) => setImmediate(r)); // let the server serve between batches
        }
        counts.clear();
        module.log.info({ deleted, ms: Date.now() - started }, `expired ${deleted} archived messages`);
      });
    }
  },
  {
    options: MAM_OPTIONS,
  },
);

/**
 * A stanza-id element in the name of a domain this server serves, or of one of
 * its accounts (`by` a JID there). A prefixed element counts as much as one
 * with `xmlns`; `by` is compared as a JID is, after IDNA mapping (case, width),
 * with a resource, stray spaces or a final dot changing nothing.
 */
function isLocalStanzaId(el: Element, serves: (domain: string) => boolean): boolean {
  if (el.getName() !== "stanza-id" || el.getNS() !== NS_SID) return false;
  const by = el.attrs.by as string | undefined;
  if (by === undefined) return false;
  let domain = by.trim();
  const slash = domain.indexOf("/");
  if (slash >= 0) domain = domain.slice(0, slash);
  domain = domain.slice(domain.lastIndexOf("@") + 1).trim();
  const ascii = domainToASCII(domain) || domain.toLowerCase();
  return serves(ascii.replace(/\.$/, ""));
}
