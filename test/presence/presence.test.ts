// Presence subscriptions and broadcast (RFC 6121 §3–4).
import { afterEach, describe, expect, it, vi } from "vitest";
import { createTestServer, type TestServer } from "../../src/testing/index.js";
import { items, NS, presences, pushes, roster } from "../roster/helpers.js";
import { NON_STRING_KEYS } from "../../src/storage/types.js";
import { xml } from "../../src/xmpp/stanza.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

describe.each(["memory", "sqlite"] as const)("presence (%s)", (driver) => {
  async function setup() {
    t = createTestServer({ storage: driver, config: { modules_enabled: ["roster", "presence"] } });
    const alice = t.connect("alice@localhost/phone");
    const bob = t.connect("bob@localhost/pc");
    await t.settle(); // the initial presences are handled
    return { alice, bob };
  }
  it("runs the subscription handshake both ways, with roster pushes, and broadcasts presence", async () => {
    const { alice, bob } = await setup();
    await roster(alice);
    await roster(bob);
    await alice.send(xml("presence", { to: "bob@localhost", type: "subscribe" }));
    expect(pushes(alice)).toEqual([{ jid: "bob@localhost", subscription: "none", ask: "subscribe", groups: [] }]);
    const req = bob.take().find((s) => s.attrs.type === "subscribe")!;
    expect(req.attrs.from).toBe("alice@localhost"); // the bare JID
    await bob.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    expect(pushes(bob)).toEqual([{ jid: "alice@localhost", subscription: "from", groups: [] }]);
    const got = alice.take();
    expect(got.some((s) => s.attrs.type === "subscribed" && s.attrs.from === "bob@localhost")).toBe(true);
    expect(got.some((s) => s.name === "presence" && s.attrs.type === undefined && s.attrs.from === "bob@localhost/pc")).toBe(true); // bob's current presence
    expect(items(got.find((s) => s.name === "iq")!.getChild("query", NS))).toEqual([{ jid: "bob@localhost", subscription: "to", groups: [] }]);
    // bob's presence now reaches alice; alice's does not reach bob (one way)
    await bob.send(xml("presence", {}, xml("show", {}, "away")));
    expect(presences(alice)).toEqual(["available from bob@localhost/pc"]);
    await alice.send(xml("presence", {}, xml("show", {}, "dnd")));
    expect(presences(bob)).toEqual([]);
    // unavailable on logout
    bob.close();
    // (the unavailable broadcast of a closed session is no stanza to await: it goes on by itself)
    await vi.waitFor(() => expect(alice.queue.some((s) => s.name === "presence")).toBe(true));
    expect(presences(alice)).toEqual(["unavailable from bob@localhost/pc"]);
    // stored as Prosody stores it
    const raw = (await t!.host().openStore("roster", "keyval").get("bob"))!;
    expect(raw["alice@localhost"]).toMatchObject({ subscription: "from" });
    expect(raw[NON_STRING_KEYS]!.get(false)).toMatchObject({ pending: {} });
  });

  it("keeps a request for an offline user and delivers it at login; sends contacts' presence at login", async () => {
    t = createTestServer({ storage: driver, config: { modules_enabled: ["roster", "presence"] } });
    const alice = t.connect("alice@localhost/phone");
    await alice.send(xml("presence", { to: "carol@localhost", type: "subscribe" }));
    const carol = t.connect("carol@localhost/tab");
    await t.settle(); // carol's initial presence is handled: what waited for her is delivered
    expect(carol.take().filter((s) => s.attrs.type === "subscribe").map((s) => s.attrs.from)).toEqual(["alice@localhost"]);
    await carol.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    alice.take();
    // a second alice resource logging in gets carol's presence at once
    const alice2 = t.connect("alice@localhost/laptop");
    await t.settle();
    const seen = presences(alice2);
    expect(seen).toContain("available from carol@localhost/tab");
    expect(seen).toContain("available from alice@localhost/phone");
  });

  it("unsubscribe and unsubscribed end the subscription and send unavailable", async () => {
    const { alice, bob } = await setup();
    await alice.send(xml("presence", { to: "bob@localhost", type: "subscribe" }));
    await bob.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    alice.take();
    bob.take();
    await bob.send(xml("presence", { to: "alice@localhost", type: "unsubscribed" }));
    expect(presences(alice)).toEqual(["unsubscribed from bob@localhost", "unavailable from bob@localhost/pc"]);
    expect(items(await roster(alice))).toEqual([{ jid: "bob@localhost", subscription: "none", groups: [] }]);
    expect(items(await roster(bob))).toEqual([{ jid: "alice@localhost", subscription: "none", groups: [] }]);
  });

  it("ignores a subscribed nobody asked for", async () => {
    const { alice, bob } = await setup();
    await bob.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    expect(alice.take()).toEqual([]);
    expect(items(await roster(alice))).toEqual([]);
  });
});
