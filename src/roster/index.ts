// mod_roster: RFC 6121 §2 roster get/set/remove with pushes and versioning,
// on Prosody's roster storage.
import type { Element } from "@xmpp/xml";
import { defineModule } from "../core/module.js";
import type { HostView } from "../core/module.js";
import type { StanzaEvent } from "../core/delivery.js";
import { parseJid } from "../xmpp/jid.js";
import { type Session, SessionSlot } from "../core/session.js";
import { iqResult, StanzaError, xml } from "../xmpp/stanza.js";
import { loadRoster, type RosterItem, saveRoster, withRosterLock } from "./store.js";

export const NS_ROSTER = "jabber:iq:roster";
const NS_ROSTER_VER = "urn:xmpp:features:rosterver";
/** The session fetched the roster, so it gets roster pushes (RFC 6121 §2.1.6). */
const INTERESTED = new SessionSlot<boolean>("roster: interested");
let pushId = 0;

export function itemElement(jid: string, item: RosterItem | "remove"): Element {
  if (item === "remove") return xml("item", { jid, subscription: "remove" });
  const attrs: Record<string, string> = { jid, subscription: item.subscription };
  if (item.name !== undefined) attrs.name = item.name;
  if (item.ask) attrs.ask = item.ask;
  return xml("item", attrs, ...Object.keys(item.groups).map((g) => xml("group", {}, g)));
}

/** Sends a roster push (RFC 6121 §2.1.6) to the user's resources that asked for the roster. */
export function pushRosterItem(host: HostView, user: string, jid: string, item: RosterItem | "remove", version: number): void {
  for (const s of host.sessionsOf(user)?.values() ?? []) {
    if (s.get(INTERESTED) !== true) continue;
    s.send(
      xml(
        "iq",
        { type: "set", id: `push-${++pushId}`, to: s.jid!.full },
        xml("query", { xmlns: NS_ROSTER, ver: String(version) }, itemElement(jid, item)),
      ),
    );
  }
}

export default defineModule("roster", (module) => {
  const host = module.hostView;
  module.addFeature(NS_ROSTER_VER);
  // RFC 6121 §2.6.1: roster versioning is advertised in the stream features
  // (once authenticated, as Prosody does); clients such as nbxmpp look nowhere else
  module.hook("stream-features", ({ origin, features }: { origin: Session | undefined; features: Element }) => {
    if (origin?.authUser !== undefined || origin?.jid !== undefined) features.c("ver", { xmlns: NS_ROSTER_VER });
    return undefined;
  });

  module.hook(`iq-get/self/${NS_ROSTER}:query`, async ({ origin, stanza }: StanzaEvent) => {
    const session = origin as Session;
    const user = session.jid!.local!;
    session.set(INTERESTED, true);
    const roster = await loadRoster(host, user);
    const ver = String(roster.meta.version);
    const asked = stanza.getChild("query", NS_ROSTER)!.attrs.ver as string | undefined;
    if (asked !== undefined && asked === ver) {
      session.send(iqResult(stanza)); // RFC 6121 §2.6.3: unchanged, empty result
      return true;
    }
    const q = xml("query", { xmlns: NS_ROSTER, ver });
    for (const [jid, item] of roster.items) q.cnode(itemElement(jid, item));
    session.send(iqResult(stanza, q));
    return true;
  });

  module.hook(`iq-set/self/${NS_ROSTER}:query`, async ({ origin, stanza }: StanzaEvent) => {
    const session = origin as Session;
    const user = session.jid!.local!;
    const items = stanza.getChild("query", NS_ROSTER)!.getChildren("item");
    if (items.length !== 1) throw new StanzaError("bad-request", "a roster set carries exactly one item");
    const el = items[0]!;
    let jid: string;
    try {
      jid = parseJid(String(el.attrs.jid ?? "")).bare;
    } catch {
      throw new StanzaError("bad-request", "the item's jid is not a valid JID");
    }
    if (jid === session.jid!.bare) throw new StanzaError("not-allowed", "you cannot add yourself to your roster");
    return withRosterLock(host, user, () => setItem(session, stanza, el, user, jid));
  });

  async function setItem(session: Session, stanza: Element, el: Element, user: string, jid: string): Promise<true> {
    const roster = await loadRoster(host, user);
    if (el.attrs.subscription === "remove") {
      const old = roster.items.get(jid);
      if (!old) throw new StanzaError("item-not-found", "no such roster item");
      roster.items.delete(jid);
      delete roster.meta.pending[jid];
      const v = await saveRoster(host, user, roster);
      session.send(iqResult(stanza));
      pushRosterItem(host, user, jid, "remove", v);
      // RFC 6121 §2.5.2: cancel the subscriptions both ways
      const from = session.jid!.bare;
      if (old.subscription === "to" || old.subscription === "both" || old.ask) {
        module.send(xml("presence", { type: "unsubscribe", from, to: jid }));
      }
      if (old.subscription === "from" || old.subscription === "both") {
        module.send(xml("presence", { type: "unsubscribed", from, to: jid }));
      }
      return true;
    }
    const groups: Record<string, true> = {};
    for (const g of el.getChildren("group")) {
      const name = g.getText();
      if (name === "") throw new StanzaError("not-acceptable", "empty group name");
      if (groups[name]) throw new StanzaError("bad-request", "duplicate group");
      groups[name] = true;
    }
    const item: RosterItem = roster.items.get(jid) ?? { subscription: "none", groups: {} };
    item.groups = groups;
    const name = el.attrs.name as string | undefined;
    if (name === undefined || name === "") delete item.name;
    else item.name = name;
    roster.items.set(jid, item);
    const v = await saveRoster(host, user, roster);
    session.send(iqResult(stanza));
    pushRosterItem(host, user, jid, item, v);
    return true;
  }
});
