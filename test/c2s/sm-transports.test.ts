// Stream management over the real transports: resuming a session whose old
// connection still looks alive (the usual mobile network switch), both
// counting directions for the RFC 3921 session iq, and WebSocket framing of
// what a resumption sends again. (From an independent review; each failed
// before its fix.)
import { afterEach, expect, it } from "vitest";
import { WebSocket } from "ws";
import { xml } from "../../src/xmpp/stanza.js";
import { MODULES, type Running, startServer } from "../e2e/helpers.js";
import { b64, header, Raw } from "./raw.js";

const UA = "11111111-1111-4111-8111-111111111111";
let run: Running | undefined;
afterEach(async () => {
  await run?.stop();
  run = undefined;
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function legacyLogin(port: number): Promise<Raw> {
  const c = new Raw(port);
  c.send(header());
  await c.until(/<\/stream:features>/);
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0bob\0bob-password")}</auth>`);
  await c.until(/<success/);
  c.send(header());
  await c.until(/<bind/);
  return c;
}

async function sasl2Login(port: number, inline: string): Promise<Raw> {
  const c = new Raw(port);
  c.send(header());
  await c.until(/<\/stream:features>/);
  c.send(
    `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>${b64("\0bob\0bob-password")}</initial-response><user-agent id='${UA}'/>${inline}</authenticate>`,
  );
  await c.until(/<\/success>|<failure/);
  return c;
}

it("resumes a session whose old connection is still open (legacy <resume/>), replacing that connection", async () => {
  run = await startServer({ allow_unencrypted_plain_auth: true });
  const port = run.listening.c2s[0]!.port;
  const c1 = await legacyLogin(port);
  c1.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq><enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
  const id = /<enabled[^>]*id="([^"]+)"/.exec(await c1.until(/<enabled[^>]*>/))![1];
  const c2 = await legacyLogin(port);
  c2.send(`<resume xmlns='urn:xmpp:sm:3' previd='${id}' h='0'/>`);
  await c2.until(/<resumed/);
  await c1.until(/<conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
  expect([...run.server.host("localhost").allSessions()].filter((s) => !s.closed)).toHaveLength(1);
});

it("resumes a session whose old connection is still open (inline in SASL2)", async () => {
  run = await startServer({ allow_unencrypted_plain_auth: true });
  const port = run.listening.c2s[0]!.port;
  const c1 = await sasl2Login(port, `<bind xmlns='urn:xmpp:bind:0'><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>`);
  const id = /<enabled[^>]*id="([^"]+)"/.exec(c1.buf)![1];
  const c2 = await sasl2Login(port, `<resume xmlns='urn:xmpp:sm:3' previd='${id}' h='0'/>`);
  expect(c2.buf).toMatch(/<resumed/);
  expect([...run.server.host("localhost").allSessions()].filter((s) => !s.closed)).toHaveLength(1);
});

it("counts the RFC 3921 session iq as received, as the client counts it as sent", async () => {
  run = await startServer({ allow_unencrypted_plain_auth: true });
  const c = await legacyLogin(run.listening.c2s[0]!.port);
  c.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq><enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
  await c.until(/<enabled/);
  c.send(
    `<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq><iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>`,
  );
  expect(await c.until(/<a xmlns="urn:xmpp:sm:3"[^>]*>/)).toMatch(/<a xmlns="urn:xmpp:sm:3" h="2"\/>/);
  expect(c.buf).toMatch(/<iq [^>]*id="s"[^>]*type="result"|<iq [^>]*type="result"[^>]*id="s"/);
});

it("over WebSocket, a SASL2 resumption sends each element again in its own message (RFC 7395 §3.3.3)", async () => {
  run = await startServer({ allow_unencrypted_plain_auth: true, consider_websocket_secure: true, modules_enabled: [...MODULES, "mam_smart_retention"] });
  const host = run.server.host("localhost");
  const open = async (inline: string) => {
    const ws = new WebSocket(run!.ws, "xmpp");
    const frames: string[] = [];
    ws.on("message", (d) => frames.push(d.toString()));
    await new Promise((r) => ws.once("open", r));
    const until = async (re: RegExp) => {
      for (let i = 0; i < 300 && !frames.some((f) => re.test(f)); i++) await sleep(10);
      if (!frames.some((f) => re.test(f))) throw new Error(`timed out waiting for ${re}: ${frames.join("\n")}`);
    };
    ws.send(`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>`);
    await until(/features/);
    ws.send(
      `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>${b64("\0bob\0bob-password")}</initial-response><user-agent id='${UA}'/>${inline}</authenticate>`,
    );
    await until(/<\/success>/);
    return { ws, frames, until };
  };
  const a = await open(`<bind xmlns='urn:xmpp:bind:0'><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>`);
  const id = /<enabled[^>]*id="([^"]+)"/.exec(a.frames.join(""))![1];
  a.ws.send(`<presence xmlns='jabber:client'/>`);
  await sleep(100);
  for (const b of ["m1", "m2"]) {
    run.server.router.fromHost(host, xml("message", { from: "alice@localhost/x", to: "bob@localhost", type: "chat", id: b }, xml("body", {}, b)));
  }
  await a.until(/m2/);
  a.ws.terminate();
  await sleep(200);
  const b = await open(`<resume xmlns='urn:xmpp:sm:3' previd='${id}' h='0'/>`);
  await b.until(/<body>m2<\/body>/);
  const success = b.frames.find((f) => f.includes("</success>"))!;
  expect(success.match(/<(message|presence|iq)[ >]/g)).toBeNull(); // nothing but <success/>
  const resent = b.frames.filter((f) => /<body>m[12]<\/body>/.test(f));
  expect(resent).toHaveLength(2); // one message each
  b.ws.close();
});
