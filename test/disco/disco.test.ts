// XEP-0030 for accounts (module disco): identity, items, unknown accounts.
import { afterEach, describe, expect, it } from "vitest";
import { defineModule } from "../../src/core/module.js";
import { createTestServer, type TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

describe("disco for accounts", () => {
  it("answers disco#info and #items on a bare JID, service-unavailable for unknown accounts", async () => {
    const accounts = defineModule("accounts", (m) => m.hook("user-exists", ({ username }: { username: string }) => username !== "ghost"));
    t = createTestServer({ config: { modules_enabled: ["disco"] }, modules: [accounts] });
    const a = t.connect("alice@localhost/phone");
    const info = await a.request(xml("iq", { type: "get", to: "bob@localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    expect(info.getChild("query")!.getChild("identity")!.attrs).toMatchObject({ category: "account", type: "registered" });
    const items = await a.request(xml("iq", { type: "get", to: "bob@localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#items" })));
    expect(items.attrs.type).toBe("result");
    const ghost = await a.request(xml("iq", { type: "get", to: "ghost@localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    expect(ghost.getChild("error")!.getChild("service-unavailable")).toBeDefined();
  });
});
