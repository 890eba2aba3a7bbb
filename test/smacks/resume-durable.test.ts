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

it("<resumed h> leaves out a stanza handled (and delivered) but not yet durable: the client sends it again, the contact gets it twice", async () => {
  const storage = new MemoryDriver({ commit: { commitDelayMs: 50 } });
  t = createTestServer({ config: { modules_enabled: ["smacks", "mam", "roster"] }, storage });
  const alice = t.connect("alice@localhost/phone", { streamManagement: true });
  const bob = t.connect("bob@localhost/pc", { streamManagement: true });
  await t.settle();
  await sleep(60);
  await alice.requestAck();
  const before = Number(alice.nonzas.filter((n) => n.name === "a").at(-1)!.attrs.h);
  alice.session.receive(xml("message", { to: "bob@localhost", type: "chat", id: "m1" }, xml("body", {}, "hello")));
  await sleep(5);
  expect(bob.received.filter((s) => s.attrs.id === "m1")).toHaveLength(1); // delivered
  alice.drop(); // connection lost before the commit
  const again = await t.resume(alice);
  const resumed = again.nonzas.find((n) => n.name === "resumed")!;
  // the client resends every stanza past h (XEP-0198 §5)
  const h = Number(resumed.attrs.h);
  if (h === before) again.session.receive(xml("message", { to: "bob@localhost", type: "chat", id: "m1" }, xml("body", {}, "hello")));
  await sleep(80);
  expect(bob.received.filter((s) => s.attrs.id === "m1")).toHaveLength(1);
});
