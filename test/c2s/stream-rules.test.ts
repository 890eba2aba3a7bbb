// Stream rules over a real socket, from an independent review of src/c2s and
// src/auth: SCRAM mechanisms for Prosody-made accounts, conflict on a replaced
// resource, invalid UTF-8, the per-stanza size limit, the stream namespace,
// and per-account throttling of SCRAM failures. Each failed before its fix.
import { createHash, createHmac, pbkdf2Sync, randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Accounts, DEFAULT_ITERATIONS } from "../../src/auth/accounts.js";
import { deriveKeys } from "../../src/auth/scram.js";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import { type Running, startServer } from "../e2e/helpers.js";
import { b64, header, plainLogin, Raw } from "../c2s/raw.js";

let run: Running | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await run?.stop();
  run = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function boot(extra: Record<string, unknown> = {}) {
  run = await startServer({ allow_unencrypted_plain_auth: true, ...extra });
  return run.listening.c2s[0]!.port;
}

function scramFirst(c: Raw, user: string, mech = "SCRAM-SHA-1") {
  const cnonce = randomBytes(12).toString("base64");
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='${mech}'>${b64(`n,,n=${user},r=${cnonce}`)}</auth>`);
  return `n=${user},r=${cnonce}`;
}

async function scramLogin(c: Raw, user: string, password: string, hash: "sha1" | "sha256", mech: string) {
  const bare = scramFirst(c, user, mech);
  const ch = await c.until(/<challenge[^>]*>([^<]+)<\/challenge>/);
  const sf = Buffer.from(/<challenge[^>]*>([^<]+)<\/challenge>/.exec(ch)![1]!, "base64").toString();
  const [, r, s, i] = /^r=([^,]+),s=([^,]+),i=(\d+)$/.exec(sf)!;
  const salted = pbkdf2Sync(password, Buffer.from(s!, "base64"), Number(i), hash === "sha1" ? 20 : 32, hash);
  const ck = createHmac(hash, salted).update("Client Key").digest();
  const sk = createHash(hash).update(ck).digest();
  const cfwp = `c=${b64("n,,")},r=${r}`;
  const sig = createHmac(hash, sk).update(`${bare},${sf},${cfwp}`).digest();
  const proof = Buffer.from(ck.map((b, k) => b ^ sig[k]!));
  c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${b64(`${cfwp},p=${proof.toString("base64")}`)}</response>`);
  return c.until(/<success|<failure/);
}

describe("stream rules (RFC 6120, SCRAM)", () => {
  it("offers SCRAM-SHA-256 only once every account can answer it (Prosody 0.12 made accounts with SHA-1 keys only)", async () => {
    // written before the server starts (it looks up whether every account has SHA-256 keys at load)
    const dir = mkdtempSync(join(tmpdir(), "mamkit-prosody-accounts-"));
    dirs.push(dir);
    const database = join(dir, "db.sqlite");
    const salt = randomUUID();
    const keys = await deriveKeys("alice-password", salt, DEFAULT_ITERATIONS, "sha1");
    const fixture = new SqliteDriver(database);
    // exactly what Prosody's internal_hashed holds
    await fixture.keyval("localhost", "accounts").set("alice", {
      salt,
      iteration_count: DEFAULT_ITERATIONS,
      stored_key: keys.storedKey.toString("hex"),
      server_key: keys.serverKey.toString("hex"),
    });
    await fixture.close();
    const port = await boot({ storage: { driver: "sqlite", database } });
    const acc = new Accounts(run!.server.host("localhost"));
    const a = (await acc.store.get("alice"))!;
    expect(a.stored_key_sha256).toBeUndefined(); // startServer's accounts left the fixture as it was
    const c = new Raw(port);
    c.send(header());
    const f = await c.until(/<\/stream:features>/);
    expect(f).not.toContain("SCRAM-SHA-256");
    expect(await scramLogin(c, "alice", "alice-password", "sha1", "SCRAM-SHA-1")).toContain("<success");
    // a PLAIN login gives the account its SHA-256 keys: then every account has them
    await plainLogin(port, "alice", "p");
    const c2 = new Raw(port);
    c2.send(header());
    expect(await c2.until(/<\/stream:features>/)).toContain("SCRAM-SHA-256");
    expect(await scramLogin(c2, "alice", "alice-password", "sha256", "SCRAM-SHA-256")).toContain("<success");
  });

  it("a replaced resource gets a <conflict/> stream error (RFC 6120 §7.7.2.2)", async () => {
    const port = await boot();
    const first = await plainLogin(port, "alice", "same");
    await plainLogin(port, "alice", "same");
    await first.waitClosed();
    expect(first.buf).toContain("<conflict");
  });

  it("invalid UTF-8 is a stream error, not silently replaced", async () => {
    const port = await boot();
    const c = await plainLogin(port);
    c.socket.write(Buffer.concat([Buffer.from("<message to='alice@localhost/r' type='chat' id='m1'><body>x"), Buffer.from([0xff, 0xfe]), Buffer.from("y</body></message>")]));
    const got = await c.until(/<\/message>|stream:error/);
    expect(got).toMatch(/stream:error/);
  });

  it("an unknown top-level element is unsupported-stanza-type, a handled one is not", async () => {
    const port = await boot();
    const ok = await plainLogin(port, "alice", "a");
    ok.send("<r xmlns='urn:xmpp:sm:3'/><iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"); // <r/> before enable: smacks answers it
    await ok.until(/id="p"/);
    expect(ok.buf).not.toMatch(/stream:error/);
    const c = await plainLogin(port, "bob", "b");
    c.send("<foo xmlns='urn:example:nothing'/>");
    expect(await c.until(/<\/stream:stream>/)).toMatch(/<unsupported-stanza-type xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
  });

  it("refuses a second SASL element sent before the answer to the first", async () => {
    const port = await boot();
    const c = new Raw(port);
    c.send(header());
    await c.until(/<\/stream:features>/);
    const auth = `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0alice\0alice-password")}</auth>`;
    c.send(auth + auth); // one write: the second arrives while the first password is being checked
    const got = await c.until(/<\/stream:stream>/);
    expect(got).toMatch(/<policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
    expect(got.match(/<success/g)?.length ?? 0).toBeLessThanOrEqual(1);
  });

  it("many small stanzas in one TCP write are not a policy violation", async () => {
    const port = await boot({ c2s_stanza_size_limit: 2000 });
    const c = await plainLogin(port);
    let s = "";
    for (let k = 0; k < 40; k++) s += `<iq type='get' id='p${k}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`;
    expect(s.length).toBeGreaterThan(2000);
    c.send(s);
    const got = await c.until(/id="p39"|id='p39'|stream:error/);
    expect(got).not.toMatch(/policy-violation/);
  });

  it("a stanza of ~2x the limit, split across packets after another stanza, is refused", async () => {
    const port = await boot({ c2s_stanza_size_limit: 2000 });
    const c = await plainLogin(port);
    const pad = "a".repeat(1800);
    c.send(`<presence/><message to='alice@localhost/r' id='big'><body>${pad}`);
    await new Promise((r) => setTimeout(r, 200));
    c.send(`${pad}</body></message>`);
    const got = await c.until(/id="big"|id='big'|stream:error/);
    expect(got).toMatch(/policy-violation/);
  });

  it("deep nesting within the size limit does not break the server", async () => {
    const port = await boot();
    const c = await plainLogin(port);
    const n = 30000;
    c.send(`<message to='bob@localhost' id='deep'><x xmlns='urn:x'>${"<a>".repeat(n)}${"</a>".repeat(n)}</x></message>`);
    await new Promise((r) => setTimeout(r, 1000));
    const d = await plainLogin(port, "bob", "b2");
    d.send(`<iq type='get' id='pp' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    expect(await d.until(/id="pp"|id='pp'/)).toMatch(/<iq [^>]*type="result"/);
    // alice's stanza nests past the depth limit (100): her stream ends with policy-violation, while bob is served
    expect(c.buf).toMatch(/<stream:error><policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
    expect(c.closed).toBe(true);
  });

  it("a stream header in a wrong namespace (prefix trick) is invalid-namespace", async () => {
    const port = await boot();
    const c = new Raw(port);
    c.send(`<?xml version='1.0'?><x:stream xmlns:x='urn:wrong' xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' to='localhost' version='1.0'>`);
    const got = await c.until(/<\/stream:features>|stream:error/);
    expect(got).toMatch(/invalid-namespace|bad-format/);
  });

  it("SCRAM failures are throttled per account, not in one bucket shared by everybody", async () => {
    const port = await boot();
    for (let k = 0; k < 4; k++) {
      const c = new Raw(port);
      c.send(header());
      await c.until(/<\/stream:features>/);
      await scramLogin(c, "alice", "wrong", "sha1", "SCRAM-SHA-1");
      c.end();
    }
    // bob, from another address, first failure: should be answered at once
    const s = connect({ port, host: "127.0.0.1", localAddress: "127.0.0.2" });
    const c = new Raw(port);
    c.socket.destroy();
    (c as { socket: unknown }).socket = s;
    s.setEncoding("utf8");
    s.on("data", (d: string) => (c.buf += d));
    c.send(header());
    await c.until(/<\/stream:features>/);
    const t0 = Date.now();
    await scramLogin(c, "bob", "wrong", "sha1", "SCRAM-SHA-1");
    expect(Date.now() - t0).toBeLessThan(200);
  });
});
