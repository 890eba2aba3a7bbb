// XEP-0441 archiving preferences, stored as Prosody's mod_mam stores them in
// the `archive_prefs` keyval store: the default under the key `false`
// (true = always, false = never, "roster"), then one key per JID (true =
// always, false = never).
import { type Element, xml } from "@xmpp/xml";
import { type KeyvalData, NON_STRING_KEYS } from "../storage/types.js";
import { parseJid } from "../xmpp/jid.js";
import { StanzaError } from "../xmpp/stanza.js";

export type DefaultPolicy = "always" | "never" | "roster";

export interface Prefs {
  default: DefaultPolicy;
  always: string[];
  never: string[];
}

const TO_STORED: Record<DefaultPolicy, boolean | string> = { always: true, never: false, roster: "roster" };

export function policyFromStored(v: unknown): DefaultPolicy | undefined {
  if (v === true) return "always";
  if (v === false) return "never";
  if (v === "roster") return "roster";
  return undefined;
}

export function prefsFromStored(data: KeyvalData | undefined, fallback: DefaultPolicy): Prefs {
  const prefs: Prefs = { default: fallback, always: [], never: [] };
  if (!data) return prefs;
  const d = policyFromStored(data[NON_STRING_KEYS]?.get(false));
  if (d) prefs.default = d;
  for (const [jid, rule] of Object.entries(data)) {
    if (rule === true) prefs.always.push(jid);
    else if (rule === false) prefs.never.push(jid);
  }
  prefs.always.sort();
  prefs.never.sort();
  return prefs;
}

export function prefsToStored(prefs: Prefs): KeyvalData {
  const data: KeyvalData = { [NON_STRING_KEYS]: new Map<unknown, unknown>([[false, TO_STORED[prefs.default]]]) };
  for (const j of prefs.always) data[j] = true;
  for (const j of prefs.never) data[j] = false; // "never" wins over "always" for a JID in both
  return data;
}

export function prefsFromElement(el: Element): Prefs {
  const def = el.attrs.default as string | undefined;
  if (def !== "always" && def !== "never" && def !== "roster") {
    throw new StanzaError("bad-request", "prefs: default must be always, never or roster");
  }
  const list = (name: string): string[] => {
    const out: string[] = [];
    for (const j of el.getChild(name)?.getChildren("jid") ?? []) {
      try {
        out.push(parseJid(j.getText()).full);
      } catch {
        throw new StanzaError("jid-malformed", `prefs: invalid JID in <${name}/>`);
      }
    }
    return out;
  };
  return { default: def, always: list("always"), never: list("never") };
}

export function prefsToElement(prefs: Prefs, ns: string): Element {
  return xml(
    "prefs",
    { xmlns: ns, default: prefs.default },
    xml("always", {}, ...prefs.always.map((j) => xml("jid", {}, j))),
    xml("never", {}, ...prefs.never.map((j) => xml("jid", {}, j))),
  );
}

/**
 * Does `prefs` allow archiving with `peer`? A full JID in a list matches that
 * full JID; a bare JID matches the bare JID and any of its resources.
 */
export function allows(prefs: Prefs, peerFull: string, peerBare: string, inRoster: () => boolean): boolean {
  if (prefs.never.includes(peerFull) || prefs.never.includes(peerBare)) return false;
  if (prefs.always.includes(peerFull) || prefs.always.includes(peerBare)) return true;
  if (prefs.default === "roster") return inRoster();
  return prefs.default === "always";
}
