// Regression tests from the independent review of the asynchronous storage change.
import { afterEach, expect, it } from "vitest";
import { MemoryDriver } from "../../src/storage/memory/driver.js";
import { createTestServer, type TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it("</stream:stream> right after a message queued behind a waiting stanza: the message is dropped unhandled", async () => {
  const storage = new MemoryDriver({ commit: { commitDelayMs: 30 } });
  t = createTestServer({ config: { modules_enabled: ["mam", "roster"] }, storage });
  const alice = t.connect("alice@localhost/phone");
  const bob = t.connect("bob@localhost/pc");
  await t.settle();
  await sleep(40);
  // one read: a roster set (its result waits for the commit), a message, the stream's end
  alice.session.receive(xml("iq", { type: "set", id: "r1" }, xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: "carol@localhost" }))));
  alice.session.receive(xml("message", { to: "bob@localhost", type: "chat", id: "m1" }, xml("body", {}, "bye")));
  alice.session.close("stream closed"); // what Connection.finish does on </stream:stream>
  await sleep(80);
  expect(bob.received.filter((s) => s.attrs.id === "m1")).toHaveLength(1);
});
