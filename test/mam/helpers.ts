// Shared helpers for the mam tests: a test server per driver, query builders.
import type { Element } from "@xmpp/xml";
import type { FakeClient, TestServerOptions } from "../../src/testing/index.js";
import { createTestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

export const NS_MAM = "urn:xmpp:mam:2";
export const NS_RSM = "http://jabber.org/protocol/rsm";
export const DRIVERS = ["memory", "sqlite"] as const;
export type DriverName = (typeof DRIVERS)[number];

export function mamServer(driver: DriverName, config: Record<string, unknown> = {}, extra: Partial<TestServerOptions> = {}) {
  return createTestServer({ storage: driver, ...extra, config: { modules_enabled: ["disco", "mam"], ...config } });
}

export interface QueryOptions {
  fields?: Record<string, string | string[]>;
  formType?: string | null;
  max?: number | string;
  after?: string;
  before?: string;
  flip?: boolean;
  queryId?: string;
  to?: string;
}

export function mamQuery(o: QueryOptions = {}): Element {
  const query = xml("query", { xmlns: NS_MAM, queryid: o.queryId ?? "q" });
  if (o.fields || o.formType !== undefined) {
    const x = query.c("x", { xmlns: "jabber:x:data", type: "submit" });
    if (o.formType !== null) x.c("field", { var: "FORM_TYPE", type: "hidden" }).c("value").t(o.formType ?? NS_MAM);
    for (const [k, v] of Object.entries(o.fields ?? {})) {
      const f = x.c("field", { var: k });
      for (const val of Array.isArray(v) ? v : [v]) f.c("value").t(val);
    }
  }
  if (o.max !== undefined || o.after !== undefined || o.before !== undefined) {
    const set = query.c("set", { xmlns: NS_RSM });
    if (o.max !== undefined) set.c("max").t(String(o.max));
    if (o.after !== undefined) set.c("after").t(o.after);
    if (o.before !== undefined) {
      const b = set.c("before");
      if (o.before !== "") b.t(o.before);
    }
  }
  if (o.flip) query.c("flip-page");
  return xml("iq", o.to ? { type: "set", to: o.to } : { type: "set" }, query);
}

export interface Page {
  iq: Element;
  /** Bodies of the forwarded messages, in the order received. */
  bodies: string[];
  ids: string[];
  complete: boolean;
  first?: string;
  last?: string;
  count?: number;
}

/** Runs a query and collects the result messages and the <fin/>. */
export async function runQuery(client: FakeClient, o: QueryOptions = {}): Promise<Page> {
  client.take();
  const iq = await client.request(mamQuery(o));
  const results = client.take().filter((m) => m.name === "message" && m.getChild("result", NS_MAM));
  const fin = iq.getChild("fin", NS_MAM);
  const set = fin?.getChild("set", NS_RSM);
  const count = set?.getChildText("count");
  return {
    iq,
    bodies: results.map((m) => m.getChild("result")!.getChild("forwarded")!.getChild("message")!.getChildText("body") ?? ""),
    ids: results.map((m) => m.getChild("result")!.attrs.id as string),
    complete: fin?.attrs.complete === "true",
    first: set?.getChildText("first") ?? undefined,
    last: set?.getChildText("last") ?? undefined,
    count: count == null ? undefined : Number(count),
  };
}

export function chat(to: string, body: string, ...extra: Element[]): Element {
  return xml("message", { to, type: "chat" }, xml("body", {}, body), ...extra);
}

export function errorOf(iq: Element): { type?: string; condition?: string; text?: string } {
  const e = iq.getChild("error");
  if (!e) return {};
  const cond = e.children.find((c) => typeof c === "object" && c.name !== "text") as Element | undefined;
  return { type: e.attrs.type as string, condition: cond?.name, text: e.getChildText("text") ?? undefined };
}
