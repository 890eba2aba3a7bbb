// XEP-0359 §5 on hosts with international names: a client-written stanza-id
// in the name of this server is recognised whatever form of the name it uses
// (the config's Unicode form, its IDNA ASCII form, another case). From a
// review; the Unicode form slipped through once.
import { afterEach, expect, it } from "vitest";
import { createTestServer, type TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

const HOST = "münchen.example";
let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

it.each([
  ["the Unicode form", `bob@${HOST}`],
  ["the ASCII form", "bob@xn--mnchen-3ya.example"],
  ["another case", "BOB@MÜNCHEN.EXAMPLE"],
  ["the host itself", HOST],
])("a stanza-id by %s of an IDN host is stripped", async (_what, by) => {
  t = createTestServer({ config: { modules_enabled: ["mam"], hosts: { [HOST]: {} } } });
  const alice = t.connect(`alice@${HOST}/a`);
  const bob = t.connect(`bob@${HOST}/b`);
  await alice.send(
    xml("message", { to: `bob@${HOST}`, type: "chat" }, xml("body", {}, "hi"), xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by, id: "forged" })),
  );
  const got = await bob.next((s) => s.name === "message");
  const ids = got.getChildren("stanza-id", "urn:xmpp:sid:0").map((s) => s.attrs.id as string);
  expect(ids).toHaveLength(1);
  expect(ids).not.toContain("forged");
  const stored = (await t.host(HOST).openStore("archive", "archive").find("bob")).items;
  expect(stored[0]!.stanza.toString()).not.toContain("forged");
});
