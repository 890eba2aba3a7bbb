// Authentication and binding as modules (saslauth, sasl2, bind2) on the real
// server: what an independent review of the move out of the connection found
// (each failed before its fix).
import { afterEach, expect, it } from "vitest";
import { smState } from "../../src/smacks/index.js";
import type { Session } from "../../src/core/session.js";
import { xml } from "../../src/xmpp/stanza.js";
import { MODULES, type Running, startServer } from "../e2e/helpers.js";
import { b64, header, Raw } from "../c2s/raw.js";

const PHONE = "11111111-1111-4111-8111-111111111111";
let run: Running | undefined;
afterEach(async () => {
  await run?.stop();
  run = undefined;
});

async function boot(extra: Record<string, unknown> = {}) {
  run = await startServer({ allow_unencrypted_plain_auth: true, modules_enabled: MODULES, ...extra });
  return run.listening.c2s[0]!.port;
}

const sasl2 = (user: string, inner = "") =>
  `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>${b64(`\0${user}\0${user}-password`)}</initial-response><user-agent id='${PHONE}'/>${inner}</authenticate>`;
const streamError = (condition: string) => new RegExp(`<stream:error><${condition} xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`);

it("a nonza sent while Bind 2 binds is not counted as a stanza once stream management is on", async () => {
  const port = await boot();
  const host = run!.server.host("localhost");
  host.events.on("resource-bind", ({ session }: { session: Session }) => {
    session.send(xml("message", { to: session.jid!.full, from: "localhost", type: "headline" }, xml("subject", {}, "welcome")));
    session.sendNonza(xml("hello", { xmlns: "urn:example:nonza" }));
    return undefined;
  });
  const c = new Raw(port);
  c.send(header());
  await c.until(/<\/stream:features>/);
  c.send(sasl2("bob", "<bind xmlns='urn:xmpp:bind:0'><enable xmlns='urn:xmpp:sm:3'/></bind>"));
  await c.until(/<\/success>[\s\S]*welcome/);
  const session = [...host.sessionsOf("bob")!.values()][0]!;
  expect(smState(session)!.queue.sent).toBe(1); // the message; the nonza is no stanza
  expect(smState(session)!.queue.pending().map((s) => s.name)).toEqual(["message"]);
});

it("after a resumption, a SASL element on the new connection is answered there", async () => {
  const port = await boot();
  const first = new Raw(port);
  first.send(header());
  await first.until(/<\/stream:features>/);
  first.send(sasl2("bob", "<bind xmlns='urn:xmpp:bind:0'><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>"));
  const ok = await first.until(/<\/success>/);
  const id = /<enabled [^>]*id="([^"]+)"/.exec(ok)![1]!;
  first.end();
  await new Promise((r) => setTimeout(r, 100));
  const second = new Raw(port);
  second.send(header());
  await second.until(/<\/stream:features>/);
  second.send(sasl2("bob", `<resume xmlns='urn:xmpp:sm:3' previd='${id}' h='0'/>`));
  await second.until(/<resumed /);
  second.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0bob\0bob-password")}</auth>`);
  const got = await second.until(streamError("policy-violation"));
  // the answer comes on the new connection, after its <resumed/>, and not on the old one
  expect(got.slice(got.indexOf("<resumed "))).toMatch(streamError("policy-violation"));
  expect(first.buf).not.toMatch(streamError("policy-violation"));
  await second.waitClosed();
});

it("one throttle for the whole server: failures from one address on two hosts add up", async () => {
  const port = await boot();
  const times: number[] = [];
  for (const domain of ["localhost", "localhost", "legacy.localhost"]) {
    const c = new Raw(port);
    c.send(header(domain));
    await c.until(/<\/stream:features>/);
    const t0 = Date.now();
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64("\0nobody\0wrong")}</auth>`);
    await c.until(/<failure/);
    times.push(Date.now() - t0);
    c.end();
  }
  expect(times[2]).toBeGreaterThanOrEqual(200); // the third failure of the address waits (250 ms)
});

it.each([
  ["<r/>", "<r xmlns='urn:xmpp:sm:3'/>"],
  ["<enable/>", "<enable xmlns='urn:xmpp:sm:3'/>"],
  ["<resume/>", "<resume xmlns='urn:xmpp:sm:3' previd='x' h='0'/>"],
])("before authentication, %s reaches no module: not-authorized", async (_what, element) => {
  const port = await boot();
  const c = new Raw(port);
  c.send(header());
  await c.until(/<\/stream:features>/);
  c.send(element);
  await c.until(streamError("not-authorized"));
  expect(c.buf).not.toContain("<failed");
});

it("SASL2 on a host without sasl2 is policy-violation, and its abort is answered", async () => {
  const port = await boot();
  const c = new Raw(port);
  c.send(header("legacy.localhost"));
  await c.until(/<\/stream:features>/);
  c.send("<abort xmlns='urn:xmpp:sasl:2'/>");
  await c.until(/<failure xmlns="urn:xmpp:sasl:2"><aborted/);
  c.send(sasl2("carol"));
  await c.until(streamError("policy-violation"));
  expect(c.buf).not.toContain("<success"); // carol never got in
});
