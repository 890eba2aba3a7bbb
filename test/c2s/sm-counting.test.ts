// Stream management counts on both sides over a real socket: the RFC 3921
// <session/> no-op iq, sent after SM was enabled inline in Bind 2, is a stanza
// the client counts in h (XEP-0198), so the server must queue it too; otherwise
// every later ack would credit one stanza more than the client handled, and
// smart retention would delete a message the client never handled.
import { afterEach, expect, it } from "vitest";
import { MODULES, type Running, startServer } from "../e2e/helpers.js";
import { xml } from "../../src/xmpp/stanza.js";
import type { Session } from "../../src/core/session.js";
import { b64, header, Raw } from "./raw.js";

const PHONE = "11111111-1111-4111-8111-111111111111";
let run: Running | undefined;
afterEach(async () => {
  await run?.stop();
  run = undefined;
});

/** Top-level stanzas in `text` (none here nests a stanza). */
const stanzas = (text: string) => (text.match(/<(iq|message|presence)[ >/]/g) ?? []).length;

async function scenario(firstIq: string, welcome = false): Promise<string[]> {
  run = await startServer({ allow_unencrypted_plain_auth: true, modules_enabled: [...MODULES, "mam_smart_retention"], archive_expires_after: "never" });
  const host = run.server.host("localhost");
  if (welcome) {
    // a module that greets every new resource: sent while Bind 2 binds, before stream management is on
    host.events.on("resource-bind", ({ session }: { session: Session }) => {
      session.send(xml("message", { to: session.jid!.full, from: "localhost", type: "headline" }, xml("subject", {}, "welcome")));
      return undefined;
    });
  }
  const c = new Raw(run.listening.c2s[0]!.port);
  c.send(header());
  await c.until(/<\/stream:features>/);
  c.send(
    `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>${b64("\0bob\0bob-password")}</initial-response>` +
      `<user-agent id='${PHONE}'/><bind xmlns='urn:xmpp:bind:0'><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind></authenticate>`,
  );
  await c.until(/<\/success>/);
  expect(c.buf).toContain("<enabled");
  const afterSuccess = () => c.buf.slice(c.buf.indexOf("</success>"));
  // a legacy-minded client: the (optional) session iq, after SM was enabled inline
  c.send(`${firstIq}<presence/>`);
  await c.until(/id="s"/);
  await new Promise((r) => setTimeout(r, 100));
  // alice sends two messages; they are archived for bob and sent to him
  for (const b of ["m1", "m2"]) {
    run.server.router.fromHost(host, xml("message", { from: "alice@localhost/x", to: "bob@localhost", type: "chat", id: b }, xml("body", {}, b)));
  }
  await c.until(/<body>m2<\/body>/);
  // the client has handled everything up to m1 (m2 is still unread in its buffer): an honest h
  const upToM1 = afterSuccess().slice(0, afterSuccess().indexOf("<body>m1</body>"));
  const h = stanzas(upToM1);
  c.send(`<a xmlns='urn:xmpp:sm:3' h='${h}'/>`);
  await new Promise((r) => setTimeout(r, 100));
  c.socket.destroy(); // the connection breaks before m2 was handled
  await new Promise((r) => setTimeout(r, 100));
  await host.events.fire("smart-retention-run", {});
  return (await host.openStore("archive", "archive").find("bob")).items.map((i) => i.stanza.getChildText("body") ?? "");
}

it("an ack after an RFC 3921 <session/> iq never credits a message the client did not handle", async () => {
  expect(await scenario("<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")).toEqual(["m2"]);
});

it("the same with a ping iq, which goes through the session: m2 is kept", async () => {
  expect(await scenario("<iq type='get' id='s'><ping xmlns='urn:xmpp:ping'/></iq>")).toEqual(["m2"]);
});

it("counts what binding sent before stream management was on, as the client does", async () => {
  expect(await scenario("<iq type='get' id='s'><ping xmlns='urn:xmpp:ping'/></iq>", true)).toEqual(["m2"]);
});
