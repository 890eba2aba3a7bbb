// XEP-0359 §5: which client-written stanza-ids claim to be this server's.
import { domainToASCII } from "node:url";
import type { Element } from "@xmpp/xml";

export const NS_SID = "urn:xmpp:sid:0";

/**
 * A stanza-id element in the name of a domain this server serves, or of one of
 * its accounts (`by` a JID there). A prefixed element counts as much as one
 * with `xmlns`; `by` is compared as a JID is, after IDNA mapping (case, width),
 * with a resource, stray spaces or a final dot changing nothing.
 */
export function isLocalStanzaId(el: Element, serves: (domain: string) => boolean): boolean {
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
