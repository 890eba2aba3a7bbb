// Shared by the roster and presence tests: a server per test, roster requests, pushes, presences.
import type { Element } from "@xmpp/xml";
import type { FakeClient } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

export const NS = "jabber:iq:roster";
export async function roster(c: FakeClient, ver?: string) {
  const r = await c.request(xml("iq", { type: "get" }, xml("query", ver === undefined ? { xmlns: NS } : { xmlns: NS, ver })));
  return r.getChild("query", NS);
}
export const items = (q: Element | undefined) =>
  (q?.getChildren("item") ?? []).map((i) => ({ ...i.attrs, groups: i.getChildren("group").map((g) => g.getText()) }));
export const pushes = (c: FakeClient) =>
  c.take().filter((s) => s.name === "iq" && s.attrs.type === "set" && s.getChild("query", NS)).map((s) => items(s.getChild("query", NS))[0]);
export const presences = (c: FakeClient) => c.take().filter((s) => s.name === "presence").map((p) => `${p.attrs.type ?? "available"} from ${p.attrs.from}`);

