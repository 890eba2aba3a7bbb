// mod_mam: XEP-0313 Message Archive Management (urn:xmpp:mam:2 + #extended),
// XEP-0359 stanza-ids, XEP-0441 preferences, expiry. Prosody 0.12's mod_mam
// in behaviour, except where noted "unlike Prosody".
import { domainToASCII } from "node:url";
import type { Element } from "@xmpp/xml";
import { defineModule } from "../core/module.js";
import type { OptionDecls } from "../core/options.js";
import { StorageError, type ArchiveRef, type KeyvalData } from "../storage/types.js";
import type { StanzaEvent } from "../core/delivery.js";
import type { Session } from "../core/session.js";
import { bareOf, localOf } from "../xmpp/jid.js";
import {
  cloneStanza,
  iqResult,
  NS_CLIENT,
  removeChildren,
  StanzaError,
  xml,
} from "../xmpp/stanza.js";
import { allows, type DefaultPolicy, type Prefs, prefsFromElement, prefsFromStored, prefsToElement, prefsToStored } from "./prefs.js";
import {
  type ArchiveMessageAdded,
  type ArchiveQueryEvent,
  type ArchiveShouldStore,
  archivedOf,
  markArchived,
  markSentArchived,
} from "./events.js";
import { findPage, type Page } from "./find.js";
import { isUnfiltered, NS_MAM, parseQuery } from "./query.js";
import { finElement, queryForm, resultMessage, stamp } from "./render.js";
import { shouldStore } from "./should-store.js";
import { isLocalStanzaId, NS_SID } from "./stanza-ids.js";

export * from "./events.js";
export { NS_MAM } from "./query.js";
export { NS_DELAY, NS_FORWARD } from "./render.js";
export { NS_SID } from "./stanza-ids.js";
export const NS_CHATSTATES = "http://jabber.org/protocol/chatstates";

const DEFAULT_PAGE = 20;
const PREFS_CACHE_MS = 10_000;


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
    // Every archived message asks for its user's preferences: they are remembered for a few
    // seconds (changed here: at once; changed by another process: within PREFS_CACHE_MS) —
    // unless other nodes share the storage, which may change them at any moment.
    const cachePrefs = !module.cluster.shared;
    const prefsCache = new Map<string, { stored: KeyvalData | undefined; until: number }>();
    let prefsWrites = 0; // a read begun before a write must not cache what it read
    async function storedPrefs(user: string): Promise<KeyvalData | undefined> {
      const hit = prefsCache.get(user);
      if (hit !== undefined && hit.until > Date.now()) return hit.stored;
      const writes = prefsWrites;
      const stored = await prefsStore.get(user);
      if (cachePrefs && writes === prefsWrites) prefsCache.set(user, { stored, until: Date.now() + PREFS_CACHE_MS });
      return stored;
    }
    async function setPrefs(user: string, prefs: Prefs | undefined): Promise<void> {
      prefsWrites++;
      prefsCache.delete(user);
      await prefsStore.set(user, prefs && prefsToStored(prefs));
    }
    async function getPrefs(user: string): Promise<Prefs> {
      const stored = await storedPrefs(user);
      // mam_smart_enable: a user who never used MAM is not archived
      return prefsFromStored(stored, smartEnable && stored === undefined ? "never" : defaultPolicy);
    }
    async function mayArchive(user: string, peerFull: string, peerBare: string): Promise<boolean> {
      const prefs = await getPrefs(user);
      // the roster is read only where the preferences ask about it
      let inRoster: boolean | undefined;
      if (prefs.default === "roster" && !prefs.always.includes(peerBare) && !prefs.never.includes(peerBare)) {
        inRoster = (await roster.get(user, peerBare)) !== undefined;
      }
      return allows(prefs, peerFull, peerBare, () => inRoster === true);
    }

    // ---- archiving -------------------------------------------------------------------

    async function appendWithQuota(user: string, stanza: Element, peerBare: string): Promise<ArchiveRef> {
      if (itemLimit !== undefined) {
        // the store's count, exact whoever deleted meanwhile (SQLite keeps it cached, so this is cheap)
        let n = (await archive.find(user, { limit: 0, total: true })).total ?? (await archive.summary(user)).count;
        if (n >= itemLimit && Number.isFinite(expiresAfter)) {
          n -= await archive.delete(user, { end: module.clock.now() - expiresAfter * 1000 - 1 });
        }
        if (n >= itemLimit) {
          // unlike Prosody (which truncates to a fraction of the limit), drop only what the new item needs
          const drop = n - itemLimit + 1;
          n -= await archive.delete(user, { limit: drop });
          module.log.info({ user, dropped: drop }, "archive over storage_archive_item_limit: oldest items removed");
        }
      }
      return archive.append(user, { stanza, when: module.clock.now(), with: peerBare });
    }

    async function archiveFor(
      user: string,
      stanza: Element,
      peerFull: string,
      origin: Session | undefined,
      direction: "incoming" | "outgoing",
    ): Promise<ArchiveRef | undefined> {
      const peerBare = bareOf(peerFull);
      const [ok, reason] = shouldStore(stanza);
      const payload: ArchiveShouldStore = { stanza, origin, user, with: peerBare, direction, should_store: ok, reason };
      const verdict = module.fire("archive-should-store", payload);
      const store = typeof verdict === "boolean" ? verdict : payload.should_store;
      if (!store) {
        module.log.debug({ user, reason: payload.reason }, "not archiving");
        return undefined;
      }
      if (!(await mayArchive(user, peerFull, peerBare))) {
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
      const ref = await appendWithQuota(user, copy, peerBare);
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
    const onIncoming = async (data: StanzaEvent) => {
      const { stanza, origin } = data;
      const to = stanza.attrs.to as string | undefined;
      const user = to === undefined ? origin?.jid?.local : localOf(to);
      if (user === undefined || !(await host.userExists(user))) return undefined;
      const userBare = `${user}@${host.name}`;
      // A stanza-id claiming to be ours that someone else put in is forged:
      // unlike Prosody, removed from the delivered copy as well as the stored one.
      removeChildren(stanza, isServersStanzaId);
      const from = (stanza.attrs.from as string | undefined) ?? host.name;
      const ref = await archiveFor(user, stanza, from, origin, "incoming");
      if (ref) {
        stanza.c("stanza-id", { xmlns: NS_SID, by: userBare, id: ref.id });
        markArchived(stanza, { user, host: host.name, id: ref.id, pos: ref.pos, prev: ref.prev });
      }
      return undefined;
    };
    module.hook("message/bare", onIncoming, 0);
    module.hook("message/full", onIncoming, 0);

    // Outgoing: into the sender's archive, with = bare recipient. A message to
    // the sender's own account is archived once, by the incoming side.
    const onOutgoing = async (data: StanzaEvent) => {
      const { stanza, origin } = data;
      // XEP-0359 §5: a client never writes a stanza-id in the name of this server or
      // one of its accounts (the sender's own included): whatever it wrote is removed
      // before the message goes anywhere, even where no archive adds ours
      if (origin) removeChildren(stanza, isServersStanzaId);
      const to = stanza.attrs.to as string | undefined;
      const user = origin?.jid?.local;
      if (!origin || user === undefined || to === undefined || data.to_self) return undefined;
      if (bareOf(to) === origin.jid!.bare) return undefined;
      const ref = await archiveFor(user, stanza, to, origin, "outgoing");
      if (ref) markSentArchived(stanza, { id: ref.id, pos: ref.pos, user });
      return undefined;
    };
    module.hook("pre-message/bare", onOutgoing, 0);
    module.hook("pre-message/full", onOutgoing, 0);
    module.hook("pre-message/host", onOutgoing, 0);

    // Nobody online: the message is in the archive, so it is kept, not bounced.
    module.hook(
      "message/offline/handle",
      ({ stanza }: StanzaEvent) => (archivedOf(stanza) !== undefined ? true : undefined),
      -1,
    );

    // ---- queries ---------------------------------------------------------------------
    async function onQuery({ origin, stanza }: StanzaEvent) {
      if (!origin?.jid) return undefined;
      const query = stanza.getChild("query", NS_MAM)!;
      const q = parseQuery(query);
      const user = origin.jid.local!;
      if (smartEnable && (await storedPrefs(user)) === undefined) {
        await setPrefs(user, { default: defaultPolicy, always: [], never: [] });
      }
      const max = Math.min(q.max ?? DEFAULT_PAGE, maxResults);
      let result: Page;
      try {
        result = await findPage(archive, `${user}@${host.name}`, user, q, max, includeTotal);
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
      for (const item of sendOrder) if (origin.send(resultMessage(item, q.queryId, resultAttrs))) sent.add(item.id);
      const handed = sent.size === items.length ? items : items.filter((i) => sent.has(i.id));
      module.fire("archive-query", {
        origin,
        query: q,
        // a page with a result missing is no longer a contiguous run of the archive
        filtered: !isUnfiltered(q) || handed.length < items.length,
        items: handed.map((i) => ({ id: i.id, pos: i.pos })),
        complete,
      } satisfies ArchiveQueryEvent);
      origin.send(iqResult(stanza, finElement(items, total, complete)));
      return true;
    }

    module.hook(`iq-set/self/${NS_MAM}:query`, onQuery);
    module.hook(`iq-get/self/${NS_MAM}:query`, ({ origin, stanza }: StanzaEvent) => {
      origin?.send(iqResult(stanza, queryForm()));
      return true;
    });
    module.hook(`iq-get/self/${NS_MAM}:metadata`, async ({ origin, stanza }: StanzaEvent) => {
      const s = await archive.summary(origin!.jid!.local!);
      const md = xml("metadata", { xmlns: NS_MAM });
      if (s.first && s.last) {
        md.c("start", { id: s.first.id, timestamp: stamp(s.first.when) });
        md.c("end", { id: s.last.id, timestamp: stamp(s.last.when) });
      }
      origin?.send(iqResult(stanza, md));
      return true;
    });
    module.hook(`iq-get/self/${NS_MAM}:prefs`, async ({ origin, stanza }: StanzaEvent) => {
      origin?.send(iqResult(stanza, prefsToElement(await getPrefs(origin!.jid!.local!), NS_MAM)));
      return true;
    });
    module.hook(`iq-set/self/${NS_MAM}:prefs`, async ({ origin, stanza }: StanzaEvent) => {
      const prefs = prefsFromElement(stanza.getChild("prefs", NS_MAM)!);
      const user = origin!.jid!.local!;
      const mark = module.writeMark();
      await setPrefs(user, prefs);
      try {
        await module.durable(mark); // the result says they are kept
      } catch (err) {
        prefsCache.delete(user); // (what it may have cached was rolled back)
        throw err;
      }
      origin?.send(iqResult(stanza, prefsToElement(await getPrefs(user), NS_MAM)));
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

    module.hook("user-deleted", async ({ username }: { username: string }) => {
      await archive.delete(username);
      await setPrefs(username, undefined);
      return undefined;
    });

    if (Number.isFinite(expiresAfter)) {
      // (several nodes on one database: one of them at a time; the others skip their turn)
      module.daily("archive expiry", async () => {
        const r = await module.cluster.exclusive(`archive-expiry:${module.host}`, false, async () => {
          const cutoff = module.clock.now() - expiresAfter * 1000 - 1; // strictly older than the period
          const started = Date.now();
          let deleted = 0;
          for (;;) {
            const n = await archive.delete(null, { end: cutoff, limit: batchSize });
            deleted += n;
            if (n < batchSize) break;
            await new Promise((r) => setImmediate(r)); // let the server serve between batches
          }
          module.log.info({ deleted, ms: Date.now() - started }, `expired ${deleted} archived messages`);
        });
        if (!r.ran) module.log.debug("another node is expiring this host's archive: skipped");
      });
    }
  },
  {
    options: MAM_OPTIONS,
  },
);
