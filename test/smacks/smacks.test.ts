// XEP-0198 through the test kit: enable, acks, ack requests, checkpoints,
// hibernation, resumption, queue limit, bad acks, undelivered messages.
import { afterEach, describe, expect, it, vi } from "vitest";
import { defineModule } from "../../src/core/module.js";
import { addCheckpoint, smState, watchDelivery } from "../../src/smacks/index.js";
import { createTestServer, type FakeClient, type TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

const NS = "urn:xmpp:sm:3";
let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
  vi.useRealTimers();
});

function server(config: Record<string, unknown> = {}, modules = ["smacks"]) {
  t = createTestServer({ config: { modules_enabled: modules, ...config } });
  const alice = t.connect("alice@localhost/phone");
  const bob = t.connect("bob@localhost/pc", { streamManagement: true });
  return { alice, bob };
}
/**
 * Fakes only the timeouts (smacks' ack delay and hibernation): setImmediate
 * stays real, since commits and the test kit's awaits run on it.
 */
const say = (from: FakeClient, to: string, body: string) =>
  from.send(xml("message", { to, type: "chat", id: body }, xml("body", {}, body)));

describe("smacks", () => {
  it("enables with a resumption id and max, and refuses a second enable", async () => {
    const { bob } = server({ smacks_hibernation_time: "5m" });
    const [enabled] = bob.nonzas;
    expect(enabled!.attrs).toMatchObject({ xmlns: NS, resume: "true", max: "300" });
    expect(enabled!.attrs.id).toMatch(/^[A-Za-z0-9_-]{24}$/);
    await bob.send(xml("enable", { xmlns: NS }));
    expect(bob.nonzas.at(-1)!.toString()).toBe(
      '<failed xmlns="urn:xmpp:sm:3"><unexpected-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></failed>',
    );
  });

  it("answers <r/> with the count of stanzas received from the client", async () => {
    const { bob } = server();
    await say(bob, "alice@localhost", "1");
    await bob.send(xml("iq", { type: "get", id: "p", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    await bob.requestAck();
    // presence + message + iq; the nonzas are not counted
    // (the server's own <r/> for the iq result it sent may come after its <a/>)
    expect(bob.nonzas.filter((n) => n.name === "a").at(-1)!.attrs).toEqual({ xmlns: NS, h: "3" });
  });

  it("asks for an ack after a burst of stanzas, once until answered", async () => {
    const { alice, bob } = server();
    await say(alice, "bob@localhost", "1");
    await say(alice, "bob@localhost", "2");
    await new Promise((r) => setImmediate(r));
    expect(bob.nonzas.filter((n) => n.name === "r")).toHaveLength(1);
    await say(alice, "bob@localhost", "3");
    await new Promise((r) => setImmediate(r));
    expect(bob.nonzas.filter((n) => n.name === "r")).toHaveLength(1);
    await bob.ack(1);
    await new Promise((r) => setImmediate(r));
    // still unacked, but no immediate ping-pong: the next stanza (or the delay) asks again
    expect(bob.nonzas.filter((n) => n.name === "r")).toHaveLength(1);
    await say(alice, "bob@localhost", "4");
    await new Promise((r) => setImmediate(r));
    expect(bob.nonzas.filter((n) => n.name === "r")).toHaveLength(2);
    await bob.ack();
    expect(smState(bob.session)!.queue.unacked).toBe(0);
  });

  it("asks after smacks_max_ack_delay when fewer than smacks_max_unacked_stanzas are pending", async () => {
    const { alice, bob } = server({ smacks_max_unacked_stanzas: 5, smacks_max_ack_delay: "10s" });
    await say(alice, "bob@localhost", "1");
    await t!.clock.advance(9_000);
    expect(bob.nonzas.filter((n) => n.name === "r")).toHaveLength(0);
    await t!.clock.advance(1_000);
    expect(bob.nonzas.filter((n) => n.name === "r")).toHaveLength(1);
  });

  it("runs checkpoints when acks cover them, exactly once", async () => {
    const { alice, bob } = server();
    const fired: string[] = [];
    await say(alice, "bob@localhost", "1");
    addCheckpoint(bob.session, () => fired.push("cp1"));
    await say(alice, "bob@localhost", "2");
    await say(alice, "bob@localhost", "3");
    addCheckpoint(bob.session, () => fired.push("cp3"));
    await bob.ack(1);
    expect(fired).toEqual(["cp1"]);
    await bob.ack(2);
    expect(fired).toEqual(["cp1"]);
    await bob.ack(3);
    await bob.ack(3);
    expect(fired).toEqual(["cp1", "cp3"]);
  });

  it("the delivery watch runs what it returned for a stanza once the client acked that stanza", async () => {
    const { alice, bob } = server();
    const acked: string[] = [];
    expect(
      watchDelivery(bob.session, (stanza) => {
        const body = stanza.getChildText("body");
        return body === "skip" ? undefined : () => acked.push(body ?? "?");
      }),
    ).toBe(true);
    await say(alice, "bob@localhost", "1");
    await say(alice, "bob@localhost", "skip");
    await say(alice, "bob@localhost", "3");
    await bob.ack(1);
    expect(acked).toEqual(["1"]);
    await bob.ack(2);
    expect(acked).toEqual(["1"]);
    await bob.ack(3);
    expect(acked).toEqual(["1", "3"]);
  });

  it("does not place checkpoints on a session without stream management", () => {
    t = createTestServer({ config: { modules_enabled: ["smacks"] } });
    const plain = t.connect("carol@localhost/x");
    expect(addCheckpoint(plain.session, () => {})).toBe(false);
  });

  it("closes the stream on an ack above what was sent (handled-count-too-high)", async () => {
    const { alice, bob } = server();
    await say(alice, "bob@localhost", "1");
    await bob.ack(2);
    const err = bob.streamError!;
    expect(err.getChild("undefined-condition", "urn:ietf:params:xml:ns:xmpp-streams")).toBeDefined();
    expect(err.getChild("handled-count-too-high", NS)!.attrs).toMatchObject({ h: "2", "send-count": "1" });
    expect(bob.session.closed).toBe(true);
  });

  it("ignores an ack that goes backwards", async () => {
    const { alice, bob } = server();
    await say(alice, "bob@localhost", "1");
    await say(alice, "bob@localhost", "2");
    await bob.ack(2);
    await bob.ack(1);
    expect(bob.session.closed).toBe(false);
    expect(smState(bob.session)!.queue.acked).toBe(2);
  });

  it("hibernates a dropped session, queues for it, and resumes: unacked stanzas re-sent, checkpoints kept", async () => {
    const { alice, bob } = server();
    const fired: string[] = [];
    await say(alice, "bob@localhost", "1");
    await say(alice, "bob@localhost", "2");
    addCheckpoint(bob.session, () => fired.push("after 2"));
    await bob.ack(1);
    bob.drop();
    expect(bob.session.hibernating).toBe(true);
    await say(alice, "bob@localhost", "3"); // routed to the hibernating session, queued
    expect(alice.take()).toEqual([]); // not bounced
    const bob2 = await t!.resume(bob, { h: 1 });
    expect(bob2.session).toBe(bob.session);
    expect(bob2.nonzas[0]!.attrs).toMatchObject({ previd: bob.smId, h: "1" });
    expect(bob2.take().map((m) => m.getChildText("body"))).toEqual(["2", "3"]);
    expect(fired).toEqual([]);
    await bob2.ack(2); // 2 acknowledged after the resumption
    expect(fired).toEqual(["after 2"]);
    await say(alice, "bob@localhost", "4");
    expect(bob2.take().map((m) => m.getChildText("body"))).toEqual(["4"]);
  });

  it("resuming with an h that covers a checkpoint runs it", async () => {
    const { alice, bob } = server();
    let fired = 0;
    await say(alice, "bob@localhost", "1");
    addCheckpoint(bob.session, () => fired++);
    bob.drop();
    await t!.resume(bob, { h: 1 });
    expect(fired).toBe(1);
  });

  it("replaces a live connection when its session is resumed elsewhere", async () => {
    const { alice, bob } = server();
    await say(alice, "bob@localhost", "1");
    const bob2 = await t!.resume(bob, { h: 0 });
    expect(bob.streamError!.getChild("conflict")).toBeDefined();
    expect(bob.disconnected).toBe(true);
    expect(bob2.take().map((m) => m.getChildText("body"))).toEqual(["1"]);
  });

  it("refuses to resume an unknown id, another account's id, or an expired session", async () => {
    const { bob } = server({ smacks_hibernation_time: "60s" });
    await expect(t!.resume(bob, { previd: "nope" })).rejects.toThrow(/item-not-found/);
    const mallory = t!.connect("mallory@localhost/x");
    await expect(t!.resume(mallory, { previd: bob.smId! })).rejects.toThrow(/item-not-found/);
    bob.drop();
    await t!.clock.advance(60_001);
    expect(bob.session.closed).toBe(true);
    await expect(t!.resume(bob)).rejects.toThrow(/item-not-found/);
  });

  it("ends a session without resumption when the connection drops", async () => {
    t = createTestServer({ config: { modules_enabled: ["smacks"] } });
    const carol = t.connect("carol@localhost/x");
    await carol.send(xml("enable", { xmlns: NS })); // no resume="true"
    expect(carol.nonzas[0]!.attrs.resume).toBeUndefined();
    carol.drop();
    expect(carol.session.closed).toBe(true);
  });

  it("closes a session whose queue exceeds smacks_max_queue_size", async () => {
    const { alice, bob } = server({ smacks_max_queue_size: 3 });
    for (let i = 1; i <= 3; i++) await say(alice, "bob@localhost", String(i));
    expect(bob.session.closed).toBe(false);
    await say(alice, "bob@localhost", "4");
    expect(bob.session.closed).toBe(true);
    expect(bob.streamError!.getChild("policy-violation")).toBeDefined();
  });

  it("when hibernation expires, bounces unacked messages that are not archived", async () => {
    const { alice, bob } = server({ smacks_hibernation_time: "10s" });
    await say(alice, "bob@localhost/pc", "lost");
    bob.drop();
    await say(alice, "bob@localhost/pc", "while away");
    alice.take();
    await t!.clock.advance(10_001);
    const bounces = alice.take();
    expect(bounces.map((b) => [b.attrs.type, b.attrs.id])).toEqual([
      ["error", "lost"],
      ["error", "while away"],
    ]);
    expect(bounces[0]!.getChild("error")!.getChild("recipient-unavailable")).toBeDefined();
  });

  it("with mam, leaves unacked archived messages to the archive instead of bouncing", async () => {
    const { alice, bob } = server({ smacks_hibernation_time: "10s" }, ["smacks", "mam"]);
    await say(alice, "bob@localhost", "archived");
    bob.drop();
    await t!.clock.advance(10_001);
    expect(alice.take()).toEqual([]);
    expect((await t!.host().openStore("archive", "archive").find("bob")).items).toHaveLength(1);
  });

  it("lets delivery/failure take undelivered stanzas", async () => {
    const taken: string[] = [];
    t = createTestServer({
      config: { modules_enabled: ["smacks"] },
      modules: [defineModule("offline", (m) => m.hook("delivery/failure", ({ stanza }) => {
        taken.push(stanza.attrs.id as string);
        return true;
      }))],
    });
    const alice = t.connect("alice@localhost/phone");
    const bob = t.connect("bob@localhost/pc", { streamManagement: true });
    await say(alice, "bob@localhost", "m1");
    bob.close();
    expect(taken).toEqual(["m1"]);
    expect(alice.take()).toEqual([]);
  });

  it("never runs checkpoints of a session that ends without resumption", async () => {
    const { alice, bob } = server();
    let fired = 0;
    await say(alice, "bob@localhost", "1");
    addCheckpoint(bob.session, () => fired++);
    bob.close();
    expect(fired).toBe(0);
  });
});
