// XEP-0280 carbons, with and without mam.
import { afterEach, describe, expect, it } from "vitest";
import type { Element } from "@xmpp/xml";
import { META_ARCHIVE_ID } from "../../src/mam/index.js";
import { createTestServer, type FakeClient, type TestServer } from "../../src/testing/index.js";
import { getMeta, xml } from "../../src/xmpp/stanza.js";

const NS = "urn:xmpp:carbons:2";
let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

async function enable(c: FakeClient) {
  const r = await c.request(xml("iq", { type: "set" }, xml("enable", { xmlns: NS })));
  expect(r.attrs.type).toBe("result");
}

function forwarded(m: Element, kind: "sent" | "received"): Element | undefined {
  return m.getChild(kind, NS)?.getChild("forwarded", "urn:xmpp:forward:0")?.getChild("message");
}

const chat = (to: string, body: string, ...extra: Element[]) => xml("message", { to, type: "chat", id: body }, xml("body", {}, body), ...extra);

describe.each(["memory", "sqlite"] as const)("carbons (%s)", (driver) => {
  function setup(withMam = true) {
    t = createTestServer({ storage: driver, config: { modules_enabled: withMam ? ["disco", "mam", "carbons"] : ["carbons"] } });
    const phone = t.connect("alice@localhost/phone");
    const laptop = t.connect("alice@localhost/laptop");
    const old = t.connect("alice@localhost/old"); // never enables carbons
    const bob = t.connect("bob@localhost/pc");
    return { phone, laptop, old, bob };
  }

  it("advertises urn:xmpp:carbons:2 on the server", async () => {
    const { phone } = setup();
    const r = await phone.request(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    expect(r.getChild("query")!.getChildren("feature").map((f) => f.attrs.var)).toContain(NS);
  });

  it("sends <received/> copies to the other carbon-enabled resources, with the archive's stanza-id", async () => {
    const { phone, laptop, old, bob } = setup();
    await enable(phone);
    await enable(laptop);
    await bob.send(chat("alice@localhost/phone", "hi phone"));
    const [direct] = phone.take();
    expect(direct!.getChildText("body")).toBe("hi phone");
    const [copy] = laptop.take();
    expect(copy!.attrs).toMatchObject({ from: "alice@localhost", to: "alice@localhost/laptop" });
    const inner = forwarded(copy!, "received")!;
    expect(inner.attrs).toMatchObject({ xmlns: "jabber:client", from: "bob@localhost/pc", to: "alice@localhost/phone" });
    const sid = inner.getChild("stanza-id", "urn:xmpp:sid:0")!;
    expect(sid.attrs).toEqual(direct!.getChild("stanza-id", "urn:xmpp:sid:0")!.attrs);
    expect(getMeta(copy!, META_ARCHIVE_ID)).toBe(sid.attrs.id);
    expect(old.take()).toEqual([]);
  });

  it("sends <sent/> copies with the sender's archive id, not the recipient's", async () => {
    const { phone, laptop, bob } = setup();
    await enable(laptop);
    await phone.send(chat("bob@localhost", "hello bob"));
    const [delivered] = bob.take();
    const [copy] = laptop.take();
    const inner = forwarded(copy!, "sent")!;
    expect(inner.attrs).toMatchObject({ from: "alice@localhost/phone", to: "bob@localhost" });
    const aliceItem = (await t!.host().openStore("archive", "archive").find("alice")).items[0]!;
    expect(inner.getChild("stanza-id", "urn:xmpp:sid:0")!.attrs).toEqual({ xmlns: "urn:xmpp:sid:0", by: "alice@localhost", id: aliceItem.id });
    expect(getMeta(copy!, META_ARCHIVE_ID)).toBe(aliceItem.id);
    // the recipient sees its own archive's id only
    const sids = delivered!.getChildren("stanza-id", "urn:xmpp:sid:0");
    expect(sids.map((s) => s.attrs.by)).toEqual(["bob@localhost"]);
    expect(phone.take()).toEqual([]); // the sender gets no copy of its own message
  });

  it("copies a message to the bare JID to the resources routing did not pick", async () => {
    const { phone, laptop, bob } = setup();
    await enable(laptop);
    await phone.send(xml("presence", {}, xml("priority", {}, "10")));
    await bob.send(chat("alice@localhost", "to the bare JID"));
    expect(phone.take().map((m) => m.getChildText("body"))).toEqual(["to the bare JID"]);
    expect(forwarded(laptop.take()[0]!, "received")!.getChildText("body")).toBe("to the bare JID");
  });

  it("respects <private/> (and removes it on delivery) and <no-copy/>", async () => {
    const { phone, laptop, bob } = setup();
    await enable(laptop);
    await enable(phone);
    await bob.send(chat("alice@localhost/phone", "private", xml("private", { xmlns: NS })));
    const [m] = phone.take();
    expect(m!.getChild("private", NS)).toBeUndefined();
    await bob.send(chat("alice@localhost/phone", "nocopy", xml("no-copy", { xmlns: "urn:xmpp:hints" })));
    await phone.send(chat("bob@localhost", "mine, private", xml("private", { xmlns: NS })));
    expect(laptop.take()).toEqual([]);
  });

  it("copies only chat and normal messages with a body", async () => {
    const { laptop, bob } = setup();
    await enable(laptop);
    await bob.send(xml("message", { to: "alice@localhost/phone", type: "headline" }, xml("body", {}, "news")));
    await bob.send(xml("message", { to: "alice@localhost/phone" }, xml("x", { xmlns: "urn:other" })));
    await bob.send(xml("message", { to: "alice@localhost/phone" }, xml("body", {}, "normal")));
    expect(laptop.take().map((m) => forwarded(m, "received")!.getChildText("body"))).toEqual(["normal"]);
  });

  it("stops copying after disable, and works without mam (no stanza-id)", async () => {
    const { laptop, bob } = setup(false);
    await enable(laptop);
    await bob.send(chat("alice@localhost/phone", "one"));
    const inner = forwarded(laptop.take()[0]!, "received")!;
    expect(inner.getChild("stanza-id", "urn:xmpp:sid:0")).toBeUndefined();
    await laptop.request(xml("iq", { type: "set" }, xml("disable", { xmlns: NS })));
    await bob.send(chat("alice@localhost/phone", "two"));
    expect(laptop.take()).toEqual([]);
  });

  it("copies a message between two own resources once, as <sent/>", async () => {
    const { phone, laptop } = setup();
    const tablet = t!.connect("alice@localhost/tablet");
    await enable(tablet);
    await phone.send(chat("alice@localhost/laptop", "note to self"));
    expect(laptop.take()).toHaveLength(1);
    const copies = tablet.take();
    expect(copies).toHaveLength(1);
    expect(forwarded(copies[0]!, "sent")).toBeDefined();
  });
});
