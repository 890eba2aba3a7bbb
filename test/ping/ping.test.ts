// XEP-0199 (module ping): the server answers pings to itself and to a
// client's own account (no 'to', or its bare JID), and pings a silent bound
// client (see test/c2s/timeouts.test.ts for what follows).
import { afterEach, expect, it } from "vitest";
import { createTestServer, type TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

it.each([
  ["the server", { to: "localhost" }],
  ["the own account, without 'to'", {}],
  ["the own bare JID", { to: "alice@localhost" }],
])("answers a ping to %s", async (_what, attrs: Record<string, string>) => {
  t = createTestServer({ config: { modules_enabled: ["ping"] } });
  const alice = t.connect("alice@localhost/a");
  const r = await alice.request(xml("iq", { type: "get", ...attrs }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  expect(r.attrs.type).toBe("result");
});

it("answers c2s-read-timeout for a bound session with a ping it must answer", () => {
  t = createTestServer({ config: { modules_enabled: ["ping"] } });
  const alice = t.connect("alice@localhost/a");
  expect(t.host().events.fire("c2s-read-timeout", { session: alice.session })).toBe(true);
  const ping = alice.take().find((s) => s.name === "iq");
  expect(ping?.attrs).toMatchObject({ type: "get", from: "localhost", to: "alice@localhost/a" });
  expect(ping?.getChild("ping", "urn:xmpp:ping")).toBeDefined();
});
