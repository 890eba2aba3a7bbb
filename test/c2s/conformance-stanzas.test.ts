// Conformance of what the server does with stanzas and acks, over real
// sockets: iq without 'to' (RFC 6120 §10.3.3), acks above what was sent
// (XEP-0198 §6), forged stanza-ids (XEP-0359 §5), silent peers. Each failed
// on the code before its fix.
import { describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { parseFrame } from "../../src/c2s/xml-stream.js";
import { b64, header, plainAuth, plainLogin, Raw, serverPerTest, stillServes } from "./raw.js";

const server = serverPerTest();
const boot = server.boot;

const SM = "urn:xmpp:sm:3";
const archiveOf = async (user: string) => (await server.run.server.host("localhost").openStore("archive", "archive").find(user)).items;
const resultFor = (id: string) => new RegExp(`<iq type="result" id="${id}"`);

describe("an iq without 'to' is handled for the account (RFC 6120 §10.3.3)", () => {
  const requests: [string, string, string][] = [
    ["ping", "get", "<ping xmlns='urn:xmpp:ping'/>"],
    ["disco#info", "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>"],
    ["disco#items", "get", "<query xmlns='http://jabber.org/protocol/disco#items'/>"],
    ["roster", "get", "<query xmlns='jabber:iq:roster'/>"],
    ["mam prefs", "get", "<prefs xmlns='urn:xmpp:mam:2'/>"],
    ["mam metadata", "get", "<metadata xmlns='urn:xmpp:mam:2'/>"],
    ["carbons enable", "set", "<enable xmlns='urn:xmpp:carbons:2'/>"],
  ];
  for (const to of ["", " to='alice@localhost'"]) {
    it.each(requests)(`%s${to ? " to the own bare JID" : " without 'to'"} gets a result`, async (name, type, payload) => {
      const port = await boot();
      const c = await plainLogin(port);
      c.send(`<iq type='${type}' id='${name}'${to}>${payload}</iq>`);
      const got = await c.until(new RegExp(`id="${name}"[^>]*>`));
      expect(got).toMatch(resultFor(name));
    });
    it(`a MAM query${to ? " to the own bare JID" : " without 'to'"} gets its results and <fin/>`, async () => {
      const port = await boot();
      const c = await plainLogin(port);
      c.send("<message to='bob@localhost' type='chat' id='m'><body>to the archive</body></message>");
      c.send(`<iq type='set' id='q'${to}><query xmlns='urn:xmpp:mam:2' queryid='f'/></iq>`);
      const got = await c.until(/<fin /);
      expect(got).toContain("to the archive");
      expect(got).toMatch(resultFor("q"));
    });
  }

  it("the account's disco#info without 'to' lists the account's features (MAM)", async () => {
    const port = await boot();
    const c = await plainLogin(port);
    c.send("<iq type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    const got = await c.until(/<\/iq>/);
    expect(got).toContain('<identity category="account" type="registered"/>');
    expect(got).toContain('var="urn:xmpp:mam:2"');
  });
});

describe("acknowledgements above what was sent (XEP-0198 §6)", () => {
  it("<a h='4294967295'/> right after <enable/> ends the stream with handled-count-too-high", async () => {
    const port = await boot();
    const c = await plainLogin(port);
    c.send(`<enable xmlns='${SM}'/>`);
    await c.until(/<enabled /);
    c.send(`<a xmlns='${SM}' h='4294967295'/>`);
    const got = await c.until(/<\/stream:stream>/);
    expect(got).toMatch(/<stream:error><undefined-condition xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
    expect(got).toContain(`<handled-count-too-high xmlns="${SM}" h="4294967295" send-count="0"/>`);
    await c.waitClosed();
    await stillServes(port);
  });

  it("<resume h/> above what was sent gets <failed/> with handled-count-too-high", async () => {
    const port = await boot();
    const c = await plainLogin(port);
    c.send(`<enable xmlns='${SM}' resume='true'/>`);
    const enabled = await c.until(/<enabled [^>]*>/);
    const id = /id="([^"]+)"/.exec(enabled.slice(enabled.indexOf("<enabled")))![1]!;
    c.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"); // one stanza sent to the client
    await c.until(/id="p"/);
    c.end();
    await new Promise((r) => setTimeout(r, 100));
    const r = await plainAuth(port);
    r.send(`<resume xmlns='${SM}' previd='${id}' h='4294967295'/>`);
    const got = await r.until(/<\/failed>/);
    expect(got).toContain(`<handled-count-too-high xmlns="${SM}" h="4294967295" send-count="1"/>`);
  });
});

describe("forged stanza-ids (XEP-0359 §5)", () => {
  it("every client-written stanza-id in the name of this server or its accounts is removed from delivered and stored copies", async () => {
    const port = await boot();
    const bob = await plainLogin(port, "bob", "b");
    bob.send("<presence/>");
    const alice = await plainLogin(port, "alice", "a");
    const forged = ["alice@localhost", "bob@localhost", "localhost", "legacy.localhost", "carol@legacy.localhost", "ALICE@LOCALHOST/x"]
      .map((by, i) => `<stanza-id xmlns='urn:xmpp:sid:0' by='${by}' id='forged-${i}'/>`)
      .join("");
    alice.send(
      `<message to='bob@localhost' type='chat' id='m'><body>hi</body>${forged}<stanza-id xmlns='urn:xmpp:sid:0' by='elsewhere.example' id='theirs'/></message>`,
    );
    const got = await bob.until(/<\/message>/);
    expect(got).not.toContain("forged-");
    expect(got).toContain('id="theirs"'); // another server's id is not ours to judge
    const ids = [...got.matchAll(/<stanza-id [^>]*by="([^"]+)"/g)].map((m) => m[1]);
    expect(ids.sort()).toEqual(["bob@localhost", "elsewhere.example"]);
    for (const user of ["alice", "bob"]) {
      const stored = (await archiveOf(user)).map((i) => i.stanza.toString());
      expect(stored).toHaveLength(1);
      expect(stored[0]).not.toContain("forged-");
    }
  });
});

describe("forged stanza-ids in disguise (found by review)", () => {
  it.each([
    ["a prefix declared on the stanza", "", "<sid:stanza-id xmlns:sid='urn:xmpp:sid:0' by='bob@localhost' id='forged'/>"],
    ["a prefix declared on the stream header", " xmlns:sid='urn:xmpp:sid:0'", "<sid:stanza-id by='bob@localhost' id='forged'/>"],
    ["a space around by", "", "<stanza-id xmlns='urn:xmpp:sid:0' by=' localhost ' id='forged'/>"],
    ["full-width letters in by", "", "<stanza-id xmlns='urn:xmpp:sid:0' by='ｂｏｂ@ｌｏｃａｌｈｏｓｔ' id='forged'/>"],
  ])("%s is stripped too", async (_what, headerExtra, forged) => {
    const port = await boot();
    const bob = await plainLogin(port, "bob", "b");
    bob.send("<presence/>");
    const alice = new Raw(port);
    alice.send(header("localhost", `version='1.0'${headerExtra}`));
    await alice.until(/<\/stream:features>/);
    alice.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0alice-password")}</auth>`);
    await alice.until(/<success/);
    alice.send(header("localhost", `version='1.0'${headerExtra}`));
    await alice.until(/<\/stream:features>/);
    alice.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    await alice.until(/<\/jid>/);
    alice.send(`<message to='bob@localhost' type='chat' id='m'><body>hi</body>${forged}</message>`);
    const got = await bob.until(/<\/message>/);
    expect(got).not.toContain("forged");
    for (const user of ["alice", "bob"]) expect((await archiveOf(user))[0]!.stanza.toString()).not.toContain("forged");
  });

  it("a stanza using a prefix of the stream header reaches others self-contained (well-formed on its own)", async () => {
    const port = await boot();
    const bob = await plainLogin(port, "bob", "b");
    bob.send("<presence/>");
    const alice = new Raw(port);
    alice.send(header("localhost", "version='1.0' xmlns:x='urn:example:x'"));
    await alice.until(/<\/stream:features>/);
    alice.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0alice-password")}</auth>`);
    await alice.until(/<success/);
    alice.send(header("localhost", "version='1.0' xmlns:x='urn:example:x'"));
    await alice.until(/<\/stream:features>/);
    alice.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    await alice.until(/<\/jid>/);
    alice.send("<message to='bob@localhost' type='chat' id='m'><body>hi</body><x:y x:a='1'/></message>");
    const got = await bob.until(/<\/message>/);
    const message = got.slice(got.indexOf("<message"));
    const el = parseFrame(message.replace("<message", "<message xmlns='jabber:client'"));
    expect(el.getChild("y", "urn:example:x")?.attrs["x:a"]).toBe("1");
    expect((await archiveOf("bob"))[0]!.stanza.getChild("y", "urn:example:x")).toBeDefined();
  });
});

describe("silent peers (c2s_read_timeout)", () => {
  it("a bound client that stays silent is pinged, then closed with connection-timeout", async () => {
    const port = await boot({ c2s_read_timeout: 0.4 });
    const c = await plainLogin(port);
    await c.until(/<ping xmlns="urn:xmpp:ping"\/>/, 3000);
    expect(c.buf).toMatch(/<iq type="get" id="keepalive-\d+" from="localhost" to="alice@localhost\/r">/);
    await c.until(/<connection-timeout xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/, 3000);
    await c.waitClosed();
    expect(server.run.server.host("localhost").sessionsOf("alice")?.size ?? 0).toBe(0);
  });

  it("nothing is written before the server's own stream header (a space there would spoil its XML declaration)", async () => {
    const port = await boot({ c2s_read_timeout: 0.2 });
    const c = new Raw(port);
    await new Promise((r) => setTimeout(r, 700));
    expect(c.buf).toBe("");
    c.send(header());
    expect(await c.until(/<\/stream:features>/)).toMatch(/^<\?xml version='1.0'\?><stream:stream /);
  });

  it.each([
    ["answers pings with pongs (as every WebSocket does)", true],
    ["never answers", false],
  ])("over WebSocket the keepalive is a ping frame: a peer that %s", async (_what, autoPong) => {
    await boot({ c2s_read_timeout: 0.3 });
    const ws = new WebSocket(server.run.ws, "xmpp", { autoPong });
    const frames: string[] = [];
    let pings = 0;
    let closed = false;
    ws.on("message", (d) => frames.push(d.toString()));
    ws.on("ping", () => pings++);
    ws.on("close", () => {
      closed = true;
    });
    await new Promise((r) => ws.once("open", r));
    ws.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>");
    await new Promise((r) => setTimeout(r, 1500));
    expect(pings).toBeGreaterThan(0);
    expect(frames.every((f) => f.trim() !== "")).toBe(true); // no bare-space message (RFC 7395: one element each)
    expect(closed).toBe(!autoPong);
    ws.terminate();
  });

  it("a client that answers the keepalive stays connected", async () => {
    const port = await boot({ c2s_read_timeout: 0.4 });
    const c = await plainLogin(port);
    for (let i = 0; i < 3; i++) {
      const text = await c.until(/id="keepalive-\d+"/, 3000);
      const id = /id="(keepalive-\d+)"/.exec(text)![1]!;
      c.buf = "";
      c.send(`<iq type='result' id='${id}' to='localhost'/>`);
    }
    expect(c.closed).toBe(false);
    expect(c.buf).not.toMatch(/stream:error/);
  });

  it("with stream management the silent client is asked for an ack, then dropped into hibernation, and nothing is lost", async () => {
    const port = await boot({ c2s_read_timeout: 0.4 });
    const c = await plainLogin(port);
    c.send(`<enable xmlns='${SM}' resume='true'/><presence/>`);
    const enabled = await c.until(/<enabled [^>]*>/);
    const id = /<enabled [^>]*id="([^"]+)"/.exec(enabled)![1]!;
    await c.until(/<r xmlns="urn:xmpp:sm:3"\/>/, 3000);
    await c.waitClosed(3000);
    expect(c.buf).not.toMatch(/stream:error/);
    const host = server.run.server.host("localhost");
    const [session] = host.sessionsOf("alice")!.values();
    expect(session!.hibernating).toBe(true);
    const bob = await plainLogin(port, "bob", "b");
    bob.send("<message to='alice@localhost' type='chat' id='while-away'><body>while you were away</body></message>");
    await new Promise((r) => setTimeout(r, 100));
    const r = await plainAuth(port);
    r.send(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
    expect(await r.until(/while you were away/)).toContain("<resumed ");
  });
});
