// Stream-level conformance over real sockets (RFC 6120), from running the
// server against clients nobody here wrote and against hostile input: bytes
// around STARTTLS, strict XML, stanzas before binding, SASL retries, roster
// versioning in the features. Each failed on the code before its fix.
import { describe, expect, it } from "vitest";
import { b64, header, plainAuth, plainLogin, Raw, serverPerTest, stillServes } from "./raw.js";

const server = serverPerTest();
const boot = server.boot;

const STARTTLS = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
const streamError = (condition: string) => new RegExp(`<stream:error><${condition} xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`);
const archiveOf = async (user: string) => (await server.run.server.host("localhost").openStore("archive", "archive").find(user)).items;

describe("STARTTLS (RFC 6120 §5.4.3.3: nothing from before TLS reaches the new stream)", () => {
  it("a newline sent with <starttls/> in one write does not spoil the encrypted stream (go-sendxmpp does this)", async () => {
    const port = await boot();
    const c = new Raw(port);
    c.send(header());
    await c.until(/<\/stream:features>/);
    c.send(`${STARTTLS}\n`);
    await c.until(/<proceed xmlns="urn:ietf:params:xml:ns:xmpp-tls"\/>/);
    await c.startTls();
    c.send(header());
    const features = await c.until(/<\/stream:features>/);
    expect(features).toContain("<mechanism>PLAIN</mechanism>");
    expect(features).not.toMatch(/stream:error/);
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0alice-password")}</auth>`);
    await c.until(/<success/);
    c.end();
  });

  it("a stream header sent in plaintext right after <starttls/> is never answered over TLS: the connection is closed", async () => {
    const port = await boot();
    const c = new Raw(port);
    c.send(header());
    await c.until(/<\/stream:features>/);
    c.send(`${STARTTLS}${header()}`);
    await c.until(/<proceed/);
    c.buf = "";
    const handshake = await c.startTls().then(
      () => "secure",
      () => "failed",
    );
    if (handshake === "secure") await c.waitClosed();
    expect(c.buf).not.toContain("<stream:stream");
    expect(c.buf).not.toContain("features");
    await stillServes(port);
  });
});

describe("strict XML (RFC 6120 §11): what is not well-formed is never routed or archived", () => {
  it.each([
    ["a control character (U+0001)", "<message to='bob@localhost' type='chat' id='x'><body>a\u0001b</body></message>"],
    ["a NUL byte", "<message to='bob@localhost' type='chat' id='x'><body>a\u0000b</body></message>"],
    ["a raw '<' in an attribute value", "<message to='bob@localhost' type='chat' id='a<b'><body>hi</body></message>"],
    ["a duplicated attribute", "<message to='bob@localhost' to='carol@localhost' type='chat' id='x'><body>hi</body></message>"],
    ["an undeclared namespace prefix", "<evil:message to='bob@localhost' type='chat' id='x'><body>hi</body></evil:message>"],
    ["an undeclared prefix on a child", "<message to='bob@localhost' type='chat' id='x'><body>hi</body><evil:x/></message>"],
    ["an undefined entity", "<message to='bob@localhost' type='chat' id='x'><body>&bogus;</body></message>"],
  ])("%s ends the stream with not-well-formed", async (_what, stanza) => {
    const port = await boot();
    const bob = await plainLogin(port, "bob", "b");
    bob.send("<presence/>");
    const alice = await plainLogin(port, "alice", "a");
    alice.send(stanza);
    await alice.until(streamError("not-well-formed"));
    await alice.waitClosed();
    bob.send("<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>");
    await bob.until(/id="after"/);
    expect(bob.buf).not.toContain("<message");
    expect(await archiveOf("alice")).toHaveLength(0);
    expect(await archiveOf("bob")).toHaveLength(0);
  });

  it("an HTTP request instead of a stream header gets a stream header and not-well-formed", async () => {
    const port = await boot();
    const c = new Raw(port);
    c.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const got = await c.until(/<\/stream:stream>/);
    expect(got).toMatch(/^<\?xml version='1.0'\?><stream:stream /);
    expect(got).toMatch(streamError("not-well-formed"));
    await c.waitClosed();
    await stillServes(port);
  });

  it("well-formed input with entities, character references, CDATA and prefixes declared on the stanza still works", async () => {
    const port = await boot();
    const bob = await plainLogin(port, "bob", "b");
    bob.send("<presence/>");
    const alice = await plainLogin(port, "alice", "a");
    alice.send(
      "<message to='bob@localhost' type='chat' id='ok'><body>fish &amp; chips &#x263A; <![CDATA[<raw>]]></body><x:y xmlns:x='urn:example:x'/></message>",
    );
    const got = await bob.until(/<\/message>/);
    expect(got).toContain("<body>fish &amp; chips \u263A &lt;raw&gt;</body>");
    expect(got).toContain('<y xmlns="urn:example:x"/>'); // the same element, its prefix resolved
  });
});

describe("stanzas before the stream is ready (RFC 6120 §4.9.3.12)", () => {
  it.each([
    ["a message", "<message to='bob@localhost' type='chat' id='early'><body>too early</body></message>"],
    ["a presence", "<presence/>"],
    ["an iq other than bind", "<iq type='get' id='early'><ping xmlns='urn:xmpp:ping'/></iq>"],
  ])("%s after SASL but before binding is the not-authorized stream error, and is not processed", async (_what, stanza) => {
    const port = await boot();
    const bob = await plainLogin(port, "bob", "b");
    bob.send("<presence/>");
    const c = await plainAuth(port);
    c.send(stanza);
    await c.until(streamError("not-authorized"));
    await c.waitClosed();
    expect(c.buf).not.toMatch(/<(message|iq) /);
    bob.send("<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>");
    await bob.until(/id="after"/);
    expect(bob.buf).not.toContain("too early");
    expect(await archiveOf("bob")).toHaveLength(0);
  });
});

describe("failed authentication (RFC 6120 §6.4.5)", () => {
  const wrong = `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0wrong")}</auth>`;

  async function attempt(c: Raw, n: number): Promise<number> {
    const t0 = Date.now();
    c.send(wrong);
    await c.until(new RegExp(`(<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><not-authorized xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/></failure>[^]*){${n}}`), 4000);
    return Date.now() - t0;
  }

  it("answers every failure within two seconds, allows sasl_max_retries retries, then ends the stream with policy-violation", async () => {
    const port = await boot();
    const first = new Raw(port);
    first.send(header());
    await first.until(/<\/stream:features>/);
    const waits: number[] = [];
    for (let n = 1; n <= 4; n++) waits.push(await attempt(first, n)); // the first try and 3 retries
    await first.until(streamError("policy-violation"));
    await first.waitClosed();
    // a new stream may try again, throttled but always answered
    const second = new Raw(port);
    second.send(header());
    await second.until(/<\/stream:features>/);
    for (let n = 1; n <= 3; n++) waits.push(await attempt(second, n));
    expect(Math.max(...waits)).toBeLessThan(2500);
    expect(waits.slice(4).every((w) => w >= 900)).toBe(true); // the throttle is real
    // the account's owner is not locked out: the right password is answered at once
    const t0 = Date.now();
    second.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0alice-password")}</auth>`);
    await second.until(/<success/);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("sasl_max_retries sets how many retries a stream gets", async () => {
    const port = await boot({ sasl_max_retries: 2 });
    const c = new Raw(port);
    c.send(header());
    await c.until(/<\/stream:features>/);
    for (let n = 1; n <= 3; n++) await attempt(c, n);
    await c.until(streamError("policy-violation"));
    // the first attempt and two retries were each answered; the stream ended after the third failure
    expect(c.buf.match(/<not-authorized xmlns="urn:ietf:params:xml:ns:xmpp-sasl"\/>/g)).toHaveLength(3);
    expect(c.buf.indexOf("policy-violation")).toBeGreaterThan(c.buf.lastIndexOf("</failure>"));
  });

  it("an abort is not a failed attempt", async () => {
    const port = await boot({ sasl_max_retries: 2 });
    const c = new Raw(port);
    c.send(header());
    await c.until(/<\/stream:features>/);
    for (let i = 0; i < 4; i++) {
      c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'/>");
      await c.until(/<challenge/);
      c.buf = "";
      c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
      await c.until(/<aborted xmlns=/);
    }
    expect(c.buf).not.toMatch(/stream:error/);
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0alice-password")}</auth>`);
    await c.until(/<success/);
  });
});

describe("roster versioning (RFC 6121 §2.6.1)", () => {
  it("is advertised in the stream features once authenticated", async () => {
    const port = await boot();
    const c = new Raw(port);
    c.send(header());
    expect(await c.until(/<\/stream:features>/)).not.toContain("rosterver");
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0alice-password")}</auth>`);
    await c.until(/<success/);
    c.buf = "";
    c.send(header());
    expect(await c.until(/<\/stream:features>/)).toContain('<ver xmlns="urn:xmpp:features:rosterver"/>');
  });

  it("is not advertised where the roster module is not loaded", async () => {
    const port = await boot({ hosts: { localhost: { modules_disabled: ["roster", "presence"] }, "legacy.localhost": {} } });
    const c = new Raw(port);
    c.send(header());
    await c.until(/<\/stream:features>/);
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0alice-password")}</auth>`);
    await c.until(/<success/);
    c.buf = "";
    c.send(header());
    expect(await c.until(/<\/stream:features>/)).not.toContain("rosterver");
  });
});
