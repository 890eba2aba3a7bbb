// The c2s stream over a raw TCP socket: stream errors, encryption policy,
// SASL details, timeouts, shutdown.
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { generate } from "selfsigned";
import { afterEach, describe, expect, it } from "vitest";
import { type Running, startServer } from "../e2e/helpers.js";
import { b64, header, Raw } from "./raw.js";

let run: Running | undefined;
afterEach(async () => {
  await run?.stop();
  run = undefined;
});


async function open(extra: Record<string, unknown> = {}) {
  run = await startServer(extra);
  return new Raw(run.listening.c2s[0]!.port);
}

describe("c2s stream", () => {
  it.each([
    ["an unknown host", header("elsewhere.example"), "host-unknown"],
    ["a wrong namespace", "<stream:stream to='localhost' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>", "invalid-namespace"],
    ["no version", header("localhost", ""), "unsupported-version"],
    ["a DOCTYPE", `${header()}<!DOCTYPE x [<!ENTITY a 'b'>]>`, "restricted-xml"],
    ["a processing instruction", `${header()}<?php echo 1; ?>`, "restricted-xml"],
    ["broken XML", `${header()}<message><body></message>`, "not-well-formed"],
    ["a stanza before authentication", `${header()}<message to='bob@localhost'><body>hi</body></message>`, "not-authorized"],
  ])("answers %s with a stream error and closes", async (_what, input, condition) => {
    const c = await open();
    c.send(input);
    const text = await c.until(new RegExp(`<${condition} xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`));
    expect(text).toMatch(/^<\?xml version='1.0'\?><stream:stream /); // the header comes first, even for errors
    await c.until(/<\/stream:stream>$/);
    await c.waitClosed();
  });

  it("with c2s_require_encryption (the default), offers only STARTTLS before TLS and refuses <auth/>", async () => {
    const c = await open({ c2s_require_encryption: true });
    c.send(header());
    const features = await c.until(/<\/stream:features>/);
    expect(features).toContain('<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"><required/></starttls>');
    expect(features).not.toContain("mechanism");
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0alice-password")}</auth>`);
    await c.until(/<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><encryption-required/);
    c.end();
  });

  it("offers PLAIN on an unencrypted connection only with allow_unencrypted_plain_auth", async () => {
    let c = await open();
    c.send(header());
    expect(await c.until(/<\/stream:features>/)).not.toContain("<mechanism>PLAIN</mechanism>");
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0alice-password")}</auth>`);
    await c.until(/<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><encryption-required/);
    c.end();
    await run!.stop();
    c = await open({ allow_unencrypted_plain_auth: true });
    c.send(header());
    expect(await c.until(/<\/stream:features>/)).toContain("<mechanism>PLAIN</mechanism>");
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0alice-password")}</auth>`);
    await c.until(/<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/);
    // the stream restarts; then legacy binding with the RFC 3921 session no-op
    c.send(header());
    expect(await c.until(/<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"\/>/)).toContain('<sm xmlns="urn:xmpp:sm:3"/>');
    c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>raw</resource></bind></iq>");
    await c.until(/<jid>alice@localhost\/raw<\/jid>/);
    c.send("<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
    await c.until(/<iq type="result" id="s"/);
    c.end();
  });

  it("refuses a SASL2 user-agent id that is not a UUID", async () => {
    const c = await open({ allow_unencrypted_plain_auth: true });
    c.send(header());
    await c.until(/<\/stream:features>/);
    c.send(
      `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>${b64("\0alice\0alice-password")}</initial-response><user-agent id='my-phone'/></authenticate>`,
    );
    await c.until(/<failure xmlns="urn:xmpp:sasl:2"><malformed-request xmlns="urn:ietf:params:xml:ns:xmpp-sasl"\/><text>the user-agent id must be a UUID/);
    expect(c.buf).not.toContain("<success"); // refused, although the password was right
    c.end();
  });

  it("answers wrong passwords with not-authorized, more and more slowly", async () => {
    const c = await open({ allow_unencrypted_plain_auth: true });
    c.send(header());
    await c.until(/<\/stream:features>/);
    const times: number[] = [];
    for (let i = 0; i < 4; i++) {
      const t0 = Date.now();
      c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0nope")}</auth>`);
      await c.until(new RegExp(`(<not-authorized xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/></failure>[^]*){${i + 1}}`), 5000);
      times.push(Date.now() - t0);
    }
    expect(times[3]!).toBeGreaterThanOrEqual(240); // the third failure is free of delay, the fourth waits
    c.end();
  });

  it("closes an unauthenticated stream after c2s_timeout with connection-timeout", async () => {
    const c = await open({ c2s_timeout: 1 });
    const t0 = Date.now();
    c.send(header());
    await c.until(/<connection-timeout xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/, 40_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900); // not before c2s_timeout (1 s)
    await c.waitClosed();
  }, 45_000);

  it("closes every stream with system-shutdown when the server stops", async () => {
    const c = await open();
    c.send(header());
    await c.until(/<\/stream:features>/);
    await run!.server.close();
    await c.until(/<system-shutdown xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
    await c.waitClosed();
    // the stream error, then the stream's end, before the socket closed
    expect(c.buf).toMatch(/<system-shutdown xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/><\/stream:error><\/stream:stream>$/);
  });
});

describe("keepalives", () => {
  it("accepts whitespace keepalives and sends one after c2s_read_timeout of silence", async () => {
    run = await startServer({ c2s_read_timeout: 1, c2s_timeout: 60 });
    const c = new Raw(run.listening.c2s[0]!.port);
    c.send(header());
    await c.until(/<\/stream:features>/);
    c.send("   \n  ");
    await c.until(/<\/stream:features> /, 5000);
    expect(c.closed).toBe(false);
    c.end();
  });
});

describe("certificates", () => {
  async function pems(name: string) {
    return generate([{ name: "commonName", value: name }], { keySize: 2048, algorithm: "sha256" });
  }

  /** STARTTLS on a raw socket; resolves with the certificate the server presented. */
  async function presented(port: number): Promise<string> {
    const socket = connect(port, "127.0.0.1");
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString("utf8");
    };
    socket.on("data", onData);
    const until = async (re: RegExp) => {
      const start = Date.now();
      while (!re.test(buf)) {
        if (Date.now() - start > 3000) throw new Error(`timed out waiting for ${re}; got ${buf}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    socket.write(header());
    await until(/<\/stream:features>/);
    socket.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await until(/<proceed xmlns="urn:ietf:params:xml:ns:xmpp-tls"\/>/);
    socket.off("data", onData);
    const secure = tlsConnect({ socket, servername: "localhost", rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", resolve);
      secure.once("error", reject);
    });
    const fingerprint = secure.getPeerCertificate().fingerprint256;
    secure.destroy();
    return fingerprint;
  }

  it("serves the certificate the `ssl` option names", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mamkit-ssl-"));
    try {
      const mine = await pems("localhost");
      writeFileSync(join(dir, "mine.crt"), mine.cert);
      writeFileSync(join(dir, "mine.key"), mine.private);
      run = await startServer({ ssl: { certificate: join(dir, "mine.crt"), key: join(dir, "mine.key") } });
      expect(await presented(run.listening.c2s[0]!.port)).toBe(new X509Certificate(mine.cert).fingerprint256);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses to start with a key that does not match the certificate, or a missing file, naming `ssl`", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mamkit-ssl-"));
    try {
      const [a, b] = [await pems("localhost"), await pems("localhost")];
      writeFileSync(join(dir, "a.crt"), a.cert);
      writeFileSync(join(dir, "b.key"), b.private);
      await expect(startServer({ ssl: { certificate: join(dir, "a.crt"), key: join(dir, "b.key") } })).rejects.toThrow(
        /^ssl for localhost .*expected a PEM certificate and its matching PEM private key/,
      );
      await expect(startServer({ ssl: { certificate: join(dir, "a.crt"), key: join(dir, "missing.key") } })).rejects.toThrow(
        /^ssl for localhost: cannot read .*missing\.key/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
