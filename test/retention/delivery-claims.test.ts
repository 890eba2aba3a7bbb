// What counts as delivered: only what reached the client's stream-management
// stream, under the client id that acknowledged it. (From an independent
// review; each of these failed before its fix.)
import type { Element } from "@xmpp/xml";
import { afterEach, expect, it } from "vitest";
import type { Host } from "../../src/core/host.js";
import { defineModule } from "../../src/core/module.js";
import { createTestServer, FakeClient, type TestServer } from "../../src/testing/index.js";
import { markArchived } from "../../src/mam/index.js";
import { xml } from "../../src/xmpp/stanza.js";

const PHONE = "11111111-1111-4111-8111-111111111111";
const LAPTOP = "22222222-2222-4222-8222-222222222222";
const NS_MAM = "urn:xmpp:mam:2";
const config = { modules_enabled: ["mam_smart_retention"], archive_expires_after: "never" };

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

// a content filter (a spam or word filter): drops what mentions SPAM
const dropSpam = defineModule("dropspam", (m) => {
  m.addSessionFilter("stanzas/out", (s: Element) => (s.toString().includes("SPAM") ? null : s));
});
const say = (from: FakeClient, body: string) => from.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, body)));
const archived = async () =>
  (await t!.host().openStore("archive", "archive").find("bob")).items.map((i) => i.stanza.getChildText("body"));

it("a MAM result dropped by a stanzas/out filter is not recorded as delivered", async () => {
  t = createTestServer({ config, modules: [dropSpam] });
  const carol = t.connect("carol@localhost/x");
  await say(carol, "m1");
  await say(carol, "SPAM m2");
  await say(carol, "m3");
  // bob's phone connects later and syncs with an unfiltered query
  const phone = t.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
  await t.settle();
  const fin = await phone.request(xml("iq", { type: "set" }, xml("query", { xmlns: NS_MAM, queryid: "q" })));
  expect(fin.attrs.type).toBe("result");
  const got = phone.take().map((m) => m.getChild("result", NS_MAM)?.getChild("forwarded")?.getChild("message")?.getChildText("body"));
  expect(got).toEqual(["m1", "m3"]);
  await phone.ack();
  await t.runScheduled("smart retention cleanup");
  expect(await archived()).toEqual(["SPAM m2"]);
});

it("a live message dropped by the same filter is not recorded either", async () => {
  t = createTestServer({ config, modules: [dropSpam] });
  const carol = t.connect("carol@localhost/x");
  const phone = t.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
  await t.settle();
  await say(carol, "m1");
  await say(carol, "SPAM m2");
  await say(carol, "m3");
  await phone.ack();
  await t.runScheduled("smart retention cleanup");
  expect(await archived()).toEqual(["SPAM m2"]);
});

it("refuses a resumption by a session of another client id", async () => {
  t = createTestServer({ config });
  const carol = t.connect("carol@localhost/x");
  const phone = t.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
  await t.settle();
  phone.drop();
  await say(carol, "m1");
  const host = t.host() as Host;
  const laptop = new FakeClient();
  laptop.session = host.openUnboundSession(laptop.sink, { username: "bob", clientId: LAPTOP });
  await host.server.router.fromSession(laptop.session, xml("resume", { xmlns: "urn:xmpp:sm:3", previd: phone.smId!, h: "0" }));
  await new Promise((r) => setImmediate(r)); // (the answer waits for the old session's durable acks)
  expect(laptop.nonzas.map((n) => n.name)).toEqual(["failed"]);
  // the phone itself still can
  const again = new FakeClient();
  again.session = host.openUnboundSession(again.sink, { username: "bob", clientId: PHONE });
  await host.server.router.fromSession(again.session, xml("resume", { xmlns: "urn:xmpp:sm:3", previd: phone.smId!, h: "0" }));
  await new Promise((r) => setImmediate(r)); // (the answer waits for the old session's durable acks)
  for (let i = 0; i < 100 && again.nonzas.length === 0; i++) await new Promise((r) => setImmediate(r));
  // resumed (then m1 again, and, a moment later, the server's ack request for it)
  expect(again.nonzas.map((n) => n.name)[0]).toBe("resumed");
  expect(again.nonzas.map((n) => n.name)).not.toContain("failed");
});

it("refuses a resumption by a connection without a client id of a session that has one", async () => {
  t = createTestServer({ config });
  const phone = t.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
  await t.settle();
  phone.drop();
  const host = t.host() as Host;
  const legacy = new FakeClient();
  legacy.session = host.openUnboundSession(legacy.sink, { username: "bob" });
  await host.server.router.fromSession(legacy.session, xml("resume", { xmlns: "urn:xmpp:sm:3", previd: phone.smId!, h: "0" }));
  await new Promise((r) => setImmediate(r)); // (the answer waits for the old session's durable acks)
  expect(legacy.nonzas.map((n) => n.name)).toEqual(["failed"]);
});

it("credits only archive positions of the user's archive on this host", async () => {
  t = createTestServer({ config });
  const carol = t.connect("carol@localhost/x");
  const phone = t.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true, presence: -1 });
  await t.settle();
  await say(carol, "m1"); // to the bare JID: the phone (priority -1) does not get it
  const m1 = (await t.host().openStore("archive", "archive").find("bob")).items[0]!;
  // a forwarding module hands the phone a stanza carrying the archive data of bob@elsewhere
  const forwarded = xml("message", { to: "bob@localhost/phone", from: "localhost", type: "chat" }, xml("body", {}, "from elsewhere"));
  markArchived(forwarded, { user: "bob", host: "elsewhere.example", id: m1.id, pos: m1.pos, prev: undefined });
  phone.session!.send(forwarded);
  await phone.ack();
  await t.runScheduled("smart retention cleanup");
  expect(await archived()).toEqual(["m1"]);
});

it("an acknowledgement above what was sent deletes nothing and ends the stream (XEP-0198 §6)", async () => {
  t = createTestServer({ config });
  const carol = t.connect("carol@localhost/x");
  const phone = t.connect("bob@localhost/phone", { clientId: PHONE, streamManagement: true });
  await t.settle();
  await say(carol, "m1");
  await say(carol, "m2");
  await phone.ack(2 ** 32 - 1); // two were sent
  expect(phone.streamError?.getChild("handled-count-too-high", "urn:xmpp:sm:3")?.attrs).toMatchObject({ h: "4294967295", "send-count": "2" });
  await t.runScheduled("smart retention cleanup");
  expect(await archived()).toEqual(["m1", "m2"]);
});
