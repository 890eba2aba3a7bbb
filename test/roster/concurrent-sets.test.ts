// Regression tests from the independent review of the asynchronous storage change.
import { afterEach, expect, it } from "vitest";
import { MemoryDriver } from "../../src/storage/memory/driver.js";
import { createTestServer, type TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";
import { loadRoster } from "../../src/roster/store.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const prefs = () => xml("iq", { type: "set", id: "p" }, xml("prefs", { xmlns: "urn:xmpp:mam:2", default: "always" }));
const add = (jid: string) => xml("iq", { type: "set", id: jid }, xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid })));

it("two resources' roster sets released by the same commit: one item is lost (read-modify-write across an await)", async () => {
  t = createTestServer({ config: { modules_enabled: ["mam", "roster"] }, storage: new MemoryDriver({ commit: { commitDelayMs: 20 } }) });
  const phone = t.connect("alice@localhost/phone");
  const pc = t.connect("alice@localhost/pc");
  await t.settle();
  await sleep(30);
  phone.session.receive(prefs());
  pc.session.receive(prefs());
  phone.session.receive(add("carol@localhost"));
  pc.session.receive(add("dave@localhost"));
  await sleep(100);
  const r = await loadRoster(t.host(), "alice");
  expect([...r.items.keys()].sort()).toEqual(["carol@localhost", "dave@localhost"]);
});
