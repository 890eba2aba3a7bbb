// mod_carbons: XEP-0280 Message Carbons (urn:xmpp:carbons:2). Resources that
// enabled carbons get <received/> copies of the account's incoming messages
// that went to another resource, and <sent/> copies of what the account's
// other resources send. Copies carry the archive's stanza-id when mam stored
// the message.
import type { Element } from "@xmpp/xml";
import { bind2Inline } from "../auth/inline.js";
import { defineModule } from "../core/module.js";
import { markArchived, NS_SID, sentArchiveOf } from "../mam/index.js";
import type { StanzaEvent } from "../core/delivery.js";
import { type Session, SessionSlot } from "../core/session.js";
import { cloneStanza, copyMeta, iqResult, NS_CLIENT, removeChildren, xml } from "../xmpp/stanza.js";

export const NS_CARBONS = "urn:xmpp:carbons:2";
const NS_FORWARD = "urn:xmpp:forward:0";
const NS_HINTS = "urn:xmpp:hints";
const ENABLED = new SessionSlot<boolean>("carbons: enabled");

export function carbonsEnabled(session: Session): boolean {
  return session.get(ENABLED) === true;
}

/** XEP-0280 §6: chat messages, and normal messages with a body. */
function eligible(stanza: Element): boolean {
  const type = (stanza.attrs.type as string | undefined) ?? "normal";
  if (type === "chat") return true;
  return type === "normal" && stanza.getChild("body") !== undefined;
}

function hasChild(stanza: Element, name: string, ns: string): boolean {
  return stanza.getChild(name, ns) !== undefined;
}

export default defineModule("carbons", (module) => {
  const host = module.hostView;
  module.addFeature(NS_CARBONS);

  const toggle = (on: boolean) => ({ origin, stanza }: StanzaEvent) => {
    origin!.set(ENABLED, on);
    origin!.send(iqResult(stanza));
    return true;
  };
  // inline in Bind 2 (XEP-0386): <enable xmlns='urn:xmpp:carbons:2'/> inside <bind/>
  bind2Inline(module).use(module, {
    ns: NS_CARBONS,
    name: "enable",
    advertise: () => xml("feature", { var: NS_CARBONS }),
    handle({ session }) {
      session.set(ENABLED, true);
      return undefined;
    },
  });
  module.hook(`iq-set/self/${NS_CARBONS}:enable`, toggle(true));
  module.hook(`iq-set/self/${NS_CARBONS}:disable`, toggle(false));

  function wrap(kind: "sent" | "received", stanza: Element, to: Session, userBare: string, extraId?: string): Element {
    const inner = cloneStanza(stanza);
    inner.attrs.xmlns = NS_CLIENT;
    if (extraId !== undefined) inner.c("stanza-id", { xmlns: NS_SID, by: userBare, id: extraId });
    return xml(
      "message",
      { from: userBare, to: to.jid!.full, type: (stanza.attrs.type as string | undefined) ?? "normal" },
      xml(kind, { xmlns: NS_CARBONS }, xml("forwarded", { xmlns: NS_FORWARD }, inner)),
    );
  }

  // Received copies: after mam (priority 0) put its stanza-id in, before delivery (-1).
  const onIncoming = (data: StanzaEvent) => {
    const { stanza } = data;
    const to = stanza.attrs.to as string | undefined;
    const local = to === undefined ? data.origin?.jid?.local : to.slice(0, to.indexOf("@"));
    if (!local) return undefined;
    // a message between two resources of one account is copied once, as <sent/>
    if (data.origin?.jid?.local === local && data.origin.host.name === host.name) return undefined;
    const privateCopy = hasChild(stanza, "private", NS_CARBONS);
    if (privateCopy) {
      // the recipient's server removes the <private/> marker (XEP-0280 §7)
      removeChildren(stanza, (c) => c.name === "private" && c.getNS() === NS_CARBONS);
      return undefined;
    }
    if (!eligible(stanza) || hasChild(stanza, "no-copy", NS_HINTS)) return undefined;
    const sessions = host.sessionsOf(local);
    if (!sessions) return undefined;
    // who gets the message itself: the addressed resource, or the top-priority ones
    const targets = new Set<Session>();
    const full = to?.includes("/") ? host.sessionFor(to!) : undefined;
    if (full) targets.add(full);
    else {
      let top = -1;
      for (const s of sessions.values()) if (s.available && s.priority > top) top = s.priority;
      if (top >= 0) for (const s of sessions.values()) if (s.available && s.priority === top) targets.add(s);
    }
    if (targets.size === 0) return undefined; // offline: nothing is delivered, nothing is copied
    const userBare = `${local}@${host.name}`;
    for (const s of sessions.values()) {
      if (!carbonsEnabled(s) || targets.has(s) || s === data.origin) continue;
      const copy = wrap("received", stanza, s, userBare);
      copyMeta(stanza, copy); // the archive id/pos of the message travel with its copy
      s.send(copy);
    }
    return undefined;
  };
  module.hook("message/bare", onIncoming, -0.5);
  module.hook("message/full", onIncoming, -0.5);

  // Sent copies: after mam archived the outgoing message (priority 0).
  const onOutgoing = (data: StanzaEvent) => {
    const { stanza, origin } = data;
    if (!origin?.jid || data.to_self) return undefined;
    if (!eligible(stanza) || hasChild(stanza, "private", NS_CARBONS) || hasChild(stanza, "no-copy", NS_HINTS)) {
      return undefined;
    }
    const sessions = host.sessionsOf(origin.jid.local!);
    if (!sessions) return undefined;
    const sent = sentArchiveOf(stanza);
    const to = stanza.attrs.to as string | undefined;
    for (const s of sessions.values()) {
      // not to the sender, and not to the resource the message is addressed to
      if (s === origin || !carbonsEnabled(s) || s.jid!.full === to) continue;
      const copy = wrap("sent", stanza, s, origin.jid.bare, sent?.id);
      if (sent) {
        markArchived(copy, { user: sent.user, host: host.name, id: sent.id, pos: sent.pos, prev: undefined });
      }
      s.send(copy);
    }
    return undefined;
  };
  module.hook("pre-message/bare", onOutgoing, -0.5);
  module.hook("pre-message/full", onOutgoing, -0.5);
  module.hook("pre-message/host", onOutgoing, -0.5);
});
