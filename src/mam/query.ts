// Parsing of a MAM query (XEP-0313 §4): the data form (XEP-0004), RSM
// (XEP-0059) and <flip-page/>. Every problem is a StanzaError naming the field.
import type { Element } from "@xmpp/xml";
import { parseJid, type Jid } from "../xmpp/jid.js";
import { StanzaError } from "../xmpp/stanza.js";

export const NS_MAM = "urn:xmpp:mam:2";
export const NS_DATA = "jabber:x:data";
export const NS_RSM = "http://jabber.org/protocol/rsm";

export interface MamQuery {
  queryId: string | undefined;
  with?: Jid;
  start?: number;
  end?: number;
  beforeId?: string;
  afterId?: string;
  ids?: string[];
  includeGroupchat: boolean;
  /** RSM: page size asked for (undefined = the default). */
  max?: number;
  /** RSM <after>. */
  after?: string;
  /** RSM <before>: an id, or "" for the last page. */
  before?: string;
  flip: boolean;
}

const FIELDS = new Set(["FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids", "include-groupchat"]);
// XEP-0082 DateTime: CCYY-MM-DDThh:mm:ss[.sss]TZD
const DATETIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-](\d{2}):(\d{2}))$/;

export function parseDateTime(s: string, field: string): number {
  const m = DATETIME.exec(s);
  // Date.parse alone would take 2026-02-30 for 2 March, and 24:00:00 for the next day
  const valid =
    m !== null &&
    Number(m[2]) >= 1 &&
    Number(m[2]) <= 12 &&
    Number(m[3]) >= 1 &&
    Number(m[3]) <= new Date(Date.UTC(Number(m[1]), Number(m[2]), 0)).getUTCDate() &&
    Number(m[4]) <= 23 &&
    Number(m[5]) <= 59 &&
    Number(m[6]) <= 59 &&
    (m[9] === undefined || (Number(m[9]) <= 23 && Number(m[10]) <= 59));
  const t = valid ? Date.parse(s) : Number.NaN;
  if (Number.isNaN(t)) throw new StanzaError("bad-request", `field '${field}': not an XEP-0082 date-time`);
  return t;
}

export function parseQuery(query: Element): MamQuery {
  const q: MamQuery = { queryId: query.attrs.queryid as string | undefined, includeGroupchat: false, flip: false };
  const form = query.getChild("x", NS_DATA);
  if (form) parseForm(form, q);
  const set = query.getChild("set", NS_RSM);
  if (set) parseRsm(set, q);
  q.flip = query.getChild("flip-page") !== undefined;
  return q;
}

function parseForm(form: Element, q: MamQuery): void {
  const type = form.attrs.type as string | undefined;
  if (type !== "submit") throw new StanzaError("bad-request", "the data form must be of type 'submit'");
  const seen = new Set<string>();
  let formType: string | undefined;
  for (const field of form.getChildren("field")) {
    const name = field.attrs.var as string | undefined;
    if (!name) throw new StanzaError("bad-request", "a form field has no 'var'");
    if (seen.has(name)) throw new StanzaError("bad-request", `field '${name}' appears twice`);
    seen.add(name);
    if (!FIELDS.has(name)) {
      // XEP-0313 §4.1.1: "If a server receives a query containing a field it does
      // not support, it MUST return a 'feature-not-implemented' error."
      throw new StanzaError("feature-not-implemented", `field '${name}' is not supported`);
    }
    const values = field.getChildren("value").map((v) => v.getText());
    if (name === "ids") {
      if (values.length === 0) throw new StanzaError("bad-request", "field 'ids': no value");
      q.ids = values;
      continue;
    }
    if (values.length > 1) throw new StanzaError("bad-request", `field '${name}': more than one value`);
    const v = values[0];
    if (v === undefined) continue; // an empty field filters nothing
    switch (name) {
      case "FORM_TYPE":
        formType = v;
        break;
      case "with":
        try {
          q.with = parseJid(v.trim());
        } catch {
          throw new StanzaError("bad-request", "field 'with': not a valid JID");
        }
        break;
      case "start":
        q.start = parseDateTime(v.trim(), name);
        break;
      case "end":
        q.end = parseDateTime(v.trim(), name);
        break;
      case "before-id":
        q.beforeId = v;
        break;
      case "after-id":
        q.afterId = v;
        break;
      case "include-groupchat":
        if (v !== "true" && v !== "false" && v !== "1" && v !== "0") {
          throw new StanzaError("bad-request", "field 'include-groupchat': not a boolean");
        }
        q.includeGroupchat = v === "true" || v === "1";
        break;
    }
  }
  if (formType !== NS_MAM) {
    throw new StanzaError("bad-request", `field 'FORM_TYPE': must be ${NS_MAM}`);
  }
}

function parseRsm(set: Element, q: MamQuery): void {
  const max = set.getChild("max");
  if (max) {
    const text = max.getText().trim();
    if (!/^\d+$/.test(text)) throw new StanzaError("bad-request", "RSM <max/> must be a non-negative integer");
    q.max = Number(text);
  }
  const after = set.getChild("after");
  if (after) {
    const id = after.getText();
    if (id === "") throw new StanzaError("bad-request", "RSM <after/> needs an id");
    q.after = id;
  }
  const before = set.getChild("before");
  if (before) q.before = before.getText();
  if (set.getChild("index")) throw new StanzaError("feature-not-implemented", "RSM <index/> is not supported");
}

/** True when the query used nothing but RSM paging (the whole archive is its result set). */
export function isUnfiltered(q: MamQuery): boolean {
  return (
    q.with === undefined &&
    q.start === undefined &&
    q.end === undefined &&
    q.beforeId === undefined &&
    q.afterId === undefined &&
    q.ids === undefined
  );
}
