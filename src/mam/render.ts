// What mam sends back: timestamps, the query form, result messages and <fin/>.
import type { Element } from "@xmpp/xml";
import type { ArchiveItem } from "../storage/types.js";
import { NS_CLIENT, xml } from "../xmpp/stanza.js";
import { NS_DATA, NS_MAM, NS_RSM } from "./query.js";

export const NS_FORWARD = "urn:xmpp:forward:0";
export const NS_DELAY = "urn:xmpp:delay";

/** XEP-0082 date-time, without milliseconds when there are none. */
export function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.000Z$/, "Z");
}

/** The query form (XEP-0313 §4.1): the fields mamkit understands. */
export function queryForm(): Element {
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

/** One result message (XEP-0313 §4.2): the archived stanza, forwarded with its delay. */
export function resultMessage(item: ArchiveItem, queryId: string | undefined, attrs: Record<string, string>): Element {
  const inner = item.stanza;
  inner.attrs.xmlns = NS_CLIENT;
  return xml(
    "message",
    attrs,
    xml(
      "result",
      { xmlns: NS_MAM, queryid: queryId, id: item.id },
      xml("forwarded", { xmlns: NS_FORWARD }, xml("delay", { xmlns: NS_DELAY, stamp: stamp(item.when) }), inner),
    ),
  );
}

/** `<fin/>` with its RSM set: first and last id of the page, the count where known. */
export function finElement(items: readonly ArchiveItem[], total: number | undefined, complete: boolean): Element {
  const set = xml("set", { xmlns: NS_RSM });
  if (items.length > 0) {
    set.c("first").t(items[0]!.id);
    set.c("last").t(items[items.length - 1]!.id);
  }
  if (total !== undefined) set.c("count").t(String(total));
  return xml("fin", complete ? { xmlns: NS_MAM, complete: "true" } : { xmlns: NS_MAM }, set);
}
