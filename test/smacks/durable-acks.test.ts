// An <a/> never runs ahead of a commit: a stanza counts in the server's h only
// once what it stored is durable; when a commit fails, what it lost is never
// acknowledged, and the stream ends so that the client sends it again.
import { afterEach, describe, expect, it } from "vitest";
import { MemoryDriver } from "../../src/storage/memory/driver.js";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import type { StorageDriver } from "../../src/storage/types.js";
import { createTestServer, type FakeClient, type TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

const NS = "urn:xmpp:sm:3";
let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

type Injectable = StorageDriver & { injectCommitFailures(n: number): void };
const drivers: [string, (delay: number) => Injectable][] = [
  ["memory", (delay) => new MemoryDriver({ commit: { commitDelayMs: delay } })],
  ["sqlite", (delay) => new SqliteDriver(":memory:", { commit: { commitDelayMs: delay } })],
];

function start(storage: StorageDriver) {
  t = createTestServer({ config: { modules_enabled: ["smacks", "mam", "roster"] }, storage });
  const alice = t.connect("alice@localhost/phone", { streamManagement: true });
  const bob = t.connect("bob@localhost/pc", { streamManagement: true });
  return { alice, bob };
}
const message = (to: string, body: string) => xml("message", { to, type: "chat", id: body }, xml("body", {}, body));
const lastAck = (c: FakeClient) => c.nonzas.filter((n) => n.name === "a").at(-1)?.attrs.h;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(drivers)("acknowledgements after durability: %s", (_name, open) => {
  it("an <r/> right after an archived message is answered only once its commit is done", async () => {
    const storage = open(80);
    const { alice, bob } = start(storage);
    await t!.settle(); // the initial presences are counted and durable
    await alice.requestAck();
    const before = Number(lastAck(alice));
    alice.session.receive(message("bob@localhost", "hello"));
    alice.session.receive(xml("r", { xmlns: NS }));
    await sleep(30);
    // delivered already (delivery does not wait for the commit), not yet acknowledged
    expect(bob.received.some((s) => s.getChildText("body") === "hello")).toBe(true);
    expect(Number(lastAck(alice))).toBe(before);
    await storage.durable();
    await sleep(5);
    expect(Number(lastAck(alice))).toBe(before + 1);
    // and it is in both archives
    const archive = t!.host().openStore("archive", "archive");
    expect((await archive.find("alice")).items).toHaveLength(1);
    expect((await archive.find("bob")).items).toHaveLength(1);
  });

  it("a failed commit: the message is never acknowledged and the stream ends with internal-server-error", async () => {
    const storage = open(20);
    const { alice } = start(storage);
    await t!.settle();
    await alice.requestAck();
    const before = Number(lastAck(alice));
    storage.injectCommitFailures(1);
    alice.session.receive(message("bob@localhost", "lost"));
    alice.session.receive(xml("r", { xmlns: NS }));
    await sleep(60);
    expect(Number(lastAck(alice))).toBe(before); // no <a/> for it, ever
    expect(alice.streamError?.getChild("internal-server-error")).toBeDefined();
    expect(alice.disconnected).toBe(true);
    expect((await t!.host().openStore("archive", "archive").find("alice")).items).toHaveLength(0);
  });

  it("a roster set's result waits for its commit", async () => {
    const storage = open(60);
    const { alice } = start(storage);
    await t!.settle();
    const iq = xml("iq", { type: "set", id: "r1" }, xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: "carol@localhost" })));
    const result = () => alice.received.find((s) => s.name === "iq" && s.attrs.id === "r1");
    alice.session.receive(iq);
    await sleep(20);
    expect(result()).toBeUndefined();
    await storage.durable();
    await sleep(5);
    expect(result()?.attrs.type).toBe("result");
  });
});
