// Which messages go into a personal archive: Prosody 0.12 mod_mam's
// should_store rules, in its order (with the one change the issue asks for:
// an error is stored only when addressed to a full JID).
import type { Element } from "@xmpp/xml";
import { NS_CLIENT } from "../xmpp/stanza.js";

export const NS_HINTS = "urn:xmpp:hints";

function has(el: Element, name: string | undefined, ns: string): boolean {
  for (const c of el.children) {
    if (typeof c !== "object") continue;
    if ((name === undefined || c.name === name) && (c.getNS() ?? NS_CLIENT) === ns) return true;
  }
  return false;
}

/** Returns [store?, reason] — the reason is logged at debug level. */
export function shouldStore(stanza: Element): [boolean, string] {
  const type = (stanza.attrs.type as string | undefined) ?? "normal";
  if (type === "headline") return [false, "headline"];
  if (type === "error") {
    // store bounces of the user's own messages, which are addressed to a full JID
    const to = stanza.attrs.to as string | undefined;
    return to?.includes("/") ? [true, "bounce"] : [false, "error to a bare JID"];
  }
  if (type === "groupchat") return [false, "groupchat"];
  if (has(stanza, "no-store", NS_HINTS) || has(stanza, "no-permanent-store", NS_HINTS)) return [false, "hint"];
  if (has(stanza, "store", NS_HINTS)) return [true, "hint"];
  if (has(stanza, "body", NS_CLIENT)) return [true, "body"];
  if (has(stanza, "subject", NS_CLIENT)) return [true, "subject"];
  if (has(stanza, "encryption", "urn:xmpp:eme:0")) return [true, "encrypted"];
  if (has(stanza, undefined, "urn:xmpp:receipts")) return [true, "receipt"];
  if (has(stanza, undefined, "urn:xmpp:chat-markers:0")) return [true, "marker"];
  if (has(stanza, "x", "jabber:x:conference")) return [true, "invite"];
  for (const c of stanza.children) {
    if (typeof c === "object" && c.name === "x" && c.getNS() === "http://jabber.org/protocol/muc#user" && c.getChild("invite")) {
      return [true, "invite"];
    }
  }
  if (has(stanza, undefined, "urn:xmpp:jingle-message:0")) return [true, "jingle call"];
  return [false, "default"];
}
