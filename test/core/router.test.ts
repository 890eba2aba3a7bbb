// The router: Prosody's event names, stamping `from`, defaults for unhandled
// stanzas, error replies for failing handlers, RFC 6121 delivery basics.
import { afterEach, describe, expect, it } from "vitest";
import { defineModule } from "../../src/core/module.js";
import { createTestServer, type TestServer } from "../../src/testing/index.js";
import type { StanzaEvent } from "../../src/core/delivery.js";
import { StanzaError, xml } from "../../src/xmpp/stanza.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

const NS = "urn:example:test";
const EVENTS = [
  "pre-message/bare", "pre-message/full", "pre-message/host",
  "message/bare", "message/full", "message/host", "message/self",
  "pre-presence/bare", "pre-presence/full", "presence/bare", "presence/full", "presence/host",
  "pre-iq/bare", "pre-iq/full", "pre-iq/host", "iq/bare", "iq/full", "iq/host", "iq/self",
  `iq/bare/${NS}:q`, `iq-get/bare/${NS}:q`, `iq-set/bare/${NS}:q`,
  `iq/self/${NS}:q`, `iq-get/self/${NS}:q`, `iq-set/self/${NS}:q`,
  `iq/host/${NS}:q`, `iq-get/host/${NS}:q`, `iq-set/host/${NS}:q`,
  "iq-result/host/r1", "iq-error/bare/r2",
];

/** Records every event above (on every host) without handling it. */
function recorder(seen: string[]) {
  return defineModule("recorder", (m) => {
    for (const e of EVENTS) m.hook(e, () => void seen.push(`${m.host} ${e}`), 1000);
  });
}

describe("router: event names", () => {
  async function setup() {
    const seen: string[] = [];
    t = createTestServer({ config: { hosts: { "a.example": {}, "b.example": {} } }, modules: [recorder(seen)] });
    const alice = t.connect("alice@a.example/phone");
    await t.settle(); // the initial presence's events
    seen.length = 0;
    return { seen, alice };
  }

  it.each([
    ["message to another's bare JID", xml("message", { to: "bob@b.example", type: "chat" }, xml("body", {}, "x")),
      ["a.example pre-message/bare", "b.example message/bare"]],
    ["message to a full JID", xml("message", { to: "bob@b.example/pc" }), ["a.example pre-message/full", "b.example message/full"]],
    ["message to a host", xml("message", { to: "b.example" }), ["a.example pre-message/host", "b.example message/host"]],
    ["message to one's own bare JID", xml("message", { to: "alice@a.example", type: "chat" }),
      ["a.example pre-message/bare", "a.example message/bare"]],
    ["presence to a bare JID", xml("presence", { to: "bob@a.example" }), ["a.example pre-presence/bare", "a.example presence/bare"]],
    ["iq get to the own account (no to)", xml("iq", { type: "get", id: "1" }, xml("q", { xmlns: NS })),
      ["a.example pre-iq/bare", "a.example iq/bare", `a.example iq/bare/${NS}:q`, `a.example iq-get/bare/${NS}:q`,
        "a.example iq/self", `a.example iq/self/${NS}:q`, `a.example iq-get/self/${NS}:q`]],
    ["iq set to a host", xml("iq", { type: "set", id: "1", to: "b.example" }, xml("q", { xmlns: NS })),
      ["a.example pre-iq/host", "b.example iq/host", `b.example iq/host/${NS}:q`, `b.example iq-set/host/${NS}:q`]],
    ["iq to a full JID", xml("iq", { type: "get", id: "1", to: "bob@b.example/pc" }, xml("q", { xmlns: NS })),
      ["a.example pre-iq/full", "b.example iq/full"]],
    ["iq result to a host", xml("iq", { type: "result", id: "r1", to: "b.example" }), ["a.example pre-iq/host", "b.example iq/host", "b.example iq-result/host/r1"]],
    ["iq error to a bare JID", xml("iq", { type: "error", id: "r2", to: "bob@a.example" }),
      ["a.example pre-iq/bare", "a.example iq/bare", "a.example iq-error/bare/r2"]],
  ])("%s", async (_what, stanza, expected) => {
    const { seen, alice } = await setup();
    await alice.send(stanza);
    expect(seen).toEqual(expected);
  });

  it("fires stanza/<ns>:<name> for top-level elements that are not stanzas", async () => {
    let got: StanzaEvent | undefined;
    t = createTestServer({ modules: [defineModule("sm", (m) => m.hook("stanza/urn:xmpp:sm:3:r", (d: StanzaEvent) => {
      got = d;
      return true;
    }))] });
    const a = t.connect("a@localhost/1");
    await a.send(xml("r", { xmlns: "urn:xmpp:sm:3" }));
    expect(got?.origin).toBe(a.session);
    expect(await t.server.router.fromSession(a.session, xml("x", { xmlns: "urn:unknown" }))).toBe(false);
  });
});

describe("router: from, to and stanza checks", () => {
  it("always stamps the sender's full JID as from; a forged from never survives", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    const b = t.connect("bob@localhost/pc");
    await a.send(xml("message", { to: "bob@localhost/pc", from: "admin@localhost/x" }, xml("body", {}, "hi")));
    await a.send(xml("message", { to: "bob@localhost/pc", from: "" }, xml("body", {}, "hi")));
    expect(b.take().map((s) => s.attrs.from)).toEqual(["alice@localhost/phone", "alice@localhost/phone"]);
  });

  it("normalises the to address", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    const b = t.connect("bob@localhost/pc");
    await a.send(xml("message", { to: "BOB@LocalHost/pc" }, xml("body", {}, "hi")));
    expect(b.take()[0]!.attrs.to).toBe("bob@localhost/pc");
  });

  it("answers a malformed to with jid-malformed (modify), and never answers an error", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    await a.send(xml("message", { to: "bad@@localhost", id: "m1", type: "chat" }, xml("body", {}, "x")));
    await a.send(xml("message", { to: "bad@@localhost", id: "m2", type: "error" }));
    const got = a.take();
    expect(got).toHaveLength(1);
    const err = got[0]!;
    expect(err.attrs).toMatchObject({ type: "error", id: "m1", to: "alice@localhost/phone", from: "localhost" });
    expect(err.getChild("error")!.attrs.type).toBe("modify");
    expect(err.getChild("error")!.getChild("jid-malformed", "urn:ietf:params:xml:ns:xmpp-stanzas")).toBeDefined();
  });

  it.each([
    ["no type", xml("iq", { id: "1" }, xml("q", { xmlns: NS })), /iq type/],
    ["unknown type", xml("iq", { id: "1", type: "fetch" }, xml("q", { xmlns: NS })), /iq type/],
    ["no id", xml("iq", { type: "get" }, xml("q", { xmlns: NS })), /needs an id/],
    ["no child", xml("iq", { type: "get", id: "1" }), /exactly one child/],
    ["two children", xml("iq", { type: "set", id: "1" }, xml("q", { xmlns: NS }), xml("q", { xmlns: NS })), /exactly one child/],
  ])("answers an iq with %s with bad-request", async (_what, iq, text) => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    await a.send(iq);
    const [r] = a.take();
    expect(r!.attrs.type).toBe("error");
    expect(r!.getChild("error")!.getChild("bad-request")).toBeDefined();
    expect(r!.getChild("error")!.getChildText("text")).toMatch(text);
  });
});

describe("router: Prosody's defaults", () => {
  it("answers an unhandled iq get/set with service-unavailable (cancel)", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    for (const [type, to] of [["get", "localhost"], ["set", undefined], ["get", "bob@localhost"]] as const) {
      const r = await a.request(xml("iq", { type, to }, xml("q", { xmlns: NS })));
      expect(r.attrs.type).toBe("error");
      expect(r.getChild("error")!.attrs.type).toBe("cancel");
      expect(r.getChild("error")!.getChild("service-unavailable")).toBeDefined();
    }
  });

  it("drops unhandled iq results and errors", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    await a.send(xml("iq", { type: "result", id: "x", to: "localhost" }));
    await a.send(xml("iq", { type: "error", id: "y" }));
    expect(a.take()).toEqual([]);
  });

  it("answers service-unavailable for an iq to an offline full JID, and forwards it to an online one", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    const b = t.connect("bob@localhost/pc");
    const r = await a.request(xml("iq", { type: "get", to: "bob@localhost/gone" }, xml("q", { xmlns: NS })));
    expect(r.getChild("error")!.getChild("service-unavailable")).toBeDefined();
    await a.send(xml("iq", { type: "get", id: "fwd", to: "bob@localhost/pc" }, xml("q", { xmlns: NS })));
    expect(b.take().map((s) => s.attrs.id)).toEqual(["fwd"]);
  });

  it("answers remote-server-not-found for domains it does not serve (no s2s)", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    const r = await a.request(xml("iq", { type: "get", to: "remote.example" }, xml("q", { xmlns: NS })));
    expect(r.getChild("error")!.getChild("remote-server-not-found")).toBeDefined();
  });

  it("answers internal-server-error when a handler throws, logs it with event and module, and goes on", async () => {
    let calls = 0;
    t = createTestServer({
      modules: [
        defineModule("broken", (m) =>
          m.hook(`iq-get/host/${NS}:q`, () => {
            calls++;
            throw new Error("secret internals");
          }),
        ),
      ],
    });
    const a = t.connect("alice@localhost/phone");
    for (let i = 0; i < 2; i++) {
      const r = await a.request(xml("iq", { type: "get", to: "localhost" }, xml("q", { xmlns: NS })));
      expect(r.getChild("error")!.getChild("internal-server-error")).toBeDefined();
      expect(r.toString()).not.toContain("secret");
    }
    expect(calls).toBe(2);
    const logged = t.logs.filter((l) => l.level === 50);
    expect(logged[0]).toMatchObject({ event: `iq-get/host/${NS}:q`, module: "broken" });
  });

  it("answers internal-server-error when an async handler rejects", async () => {
    t = createTestServer({
      modules: [defineModule("async", (m) => m.hook(`iq-set/self/${NS}:q`, async () => {
        await Promise.resolve();
        throw new Error("later");
      }))],
    });
    const a = t.connect("alice@localhost/phone");
    const r = await a.request(xml("iq", { type: "set" }, xml("q", { xmlns: NS })));
    expect(r.getChild("error")!.getChild("internal-server-error")).toBeDefined();
  });

  it("answers with the StanzaError a handler throws", async () => {
    t = createTestServer({
      modules: [defineModule("picky", (m) => m.hook(`iq-set/self/${NS}:q`, () => {
        throw new StanzaError("feature-not-implemented", "field 'colour' is not supported");
      }))],
    });
    const a = t.connect("alice@localhost/phone");
    const r = await a.request(xml("iq", { type: "set" }, xml("q", { xmlns: NS })));
    const e = r.getChild("error")!;
    expect(e.attrs.type).toBe("cancel");
    expect(e.getChild("feature-not-implemented")).toBeDefined();
    expect(e.getChildText("text")).toBe("field 'colour' is not supported");
    expect(t.logs.filter((l) => l.level >= 50)).toEqual([]);
  });
});

describe("router: message delivery (RFC 6121 §8.5)", () => {
  it("delivers chat to a bare JID to the highest non-negative priority resources", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    const low = t.connect("bob@localhost/low", { presence: 1 });
    const high1 = t.connect("bob@localhost/high1", { presence: 5 });
    const high2 = t.connect("bob@localhost/high2", { presence: 5 });
    const neg = t.connect("bob@localhost/neg", { presence: -1 });
    await t.settle();
    await a.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hi")));
    expect([low, high1, high2, neg].map((c) => c.take().length)).toEqual([0, 1, 1, 0]);
  });

  it("delivers headlines to every non-negative resource", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    const b1 = t.connect("bob@localhost/1", { presence: 1 });
    const b2 = t.connect("bob@localhost/2", { presence: 0 });
    const b3 = t.connect("bob@localhost/3", { presence: -5 });
    await t.settle();
    await a.send(xml("message", { to: "bob@localhost", type: "headline" }, xml("body", {}, "news")));
    expect([b1, b2, b3].map((c) => c.take().length)).toEqual([1, 1, 0]);
  });

  it("gives each recipient its own copy", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    const b1 = t.connect("bob@localhost/1");
    const b2 = t.connect("bob@localhost/2");
    await t.settle();
    await a.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hi")));
    const [m1] = b1.take();
    const [m2] = b2.take();
    expect(m1).not.toBe(m2);
    expect(m1!.toString()).toBe(m2!.toString());
  });

  it("treats a message to an offline full JID as to the bare JID", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    const b = t.connect("bob@localhost/pc");
    await t.settle();
    await a.send(xml("message", { to: "bob@localhost/gone", type: "chat" }, xml("body", {}, "hi")));
    expect(b.take()).toHaveLength(1);
  });

  it("bounces chat with service-unavailable when nobody is online and no module keeps it", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    t.connect("bob@localhost/away", { presence: false });
    await t.settle();
    await a.send(xml("message", { to: "bob@localhost", type: "chat", id: "m1" }, xml("body", {}, "hi")));
    const [r] = a.take();
    expect(r!.attrs).toMatchObject({ type: "error", id: "m1", from: "bob@localhost" });
    expect(r!.getChild("error")!.getChild("service-unavailable")).toBeDefined();
  });

  it("lets a module take offline messages through message/offline/handle", async () => {
    const kept: string[] = [];
    t = createTestServer({
      modules: [defineModule("offline", (m) => m.hook("message/offline/handle", (d: StanzaEvent) => {
        kept.push(d.stanza.getChildText("body")!);
        return true;
      }))],
    });
    const a = t.connect("alice@localhost/phone");
    await t.settle();
    await a.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "later")));
    expect(kept).toEqual(["later"]);
    expect(a.take()).toEqual([]);
  });

  it("stops tracking presence when the session goes unavailable", async () => {
    t = createTestServer();
    const a = t.connect("alice@localhost/phone");
    const b = t.connect("bob@localhost/pc");
    await t.settle();
    await b.send(xml("presence", { type: "unavailable" }));
    expect(b.session.available).toBe(false);
    await a.send(xml("message", { to: "bob@localhost", type: "normal" }, xml("body", {}, "x")));
    expect(b.take()).toEqual([]);
  });
});
