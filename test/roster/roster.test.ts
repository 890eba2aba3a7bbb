// Roster (RFC 6121 §2): get, set, update, remove, pushes, versions.
import type { Element } from "@xmpp/xml";
import { afterEach, describe, expect, it } from "vitest";
import { createTestServer, type TestServer } from "../../src/testing/index.js";
import { items, NS, pushes, roster } from "./helpers.js";
import { xml } from "../../src/xmpp/stanza.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

describe.each(["memory", "sqlite"] as const)("roster (%s)", (driver) => {
  async function setup() {
    t = createTestServer({ storage: driver, config: { modules_enabled: ["roster", "presence"] } });
    const alice = t.connect("alice@localhost/phone");
    const bob = t.connect("bob@localhost/pc");
    await t.settle(); // the initial presences are handled
    return { alice, bob };
  }
  it("gets, sets, updates and removes items, with pushes and versions", async () => {
    const { alice } = await setup();
    expect(items(await roster(alice))).toEqual([]);
    const r = await alice.request(xml("iq", { type: "set" }, xml("query", { xmlns: NS }, xml("item", { jid: "Bob@localhost", name: "Bob" }, xml("group", {}, "Friends")))));
    expect(r.attrs.type).toBe("result");
    expect(pushes(alice)).toEqual([{ jid: "bob@localhost", subscription: "none", name: "Bob", groups: ["Friends"] }]);
    const q = await roster(alice);
    expect(items(q)).toEqual([{ jid: "bob@localhost", subscription: "none", name: "Bob", groups: ["Friends"] }]);
    // roster versioning: an unchanged roster is an empty result
    const same = await alice.request(xml("iq", { type: "get" }, xml("query", { xmlns: NS, ver: q!.attrs.ver })));
    expect(same.children).toEqual([]);
    await alice.request(xml("iq", { type: "set" }, xml("query", { xmlns: NS }, xml("item", { jid: "bob@localhost", subscription: "remove" }))));
    expect(pushes(alice)).toEqual([{ jid: "bob@localhost", subscription: "remove", groups: [] }]);
    expect(items(await roster(alice))).toEqual([]);
  });

  it("refuses bad roster sets", async () => {
    const { alice } = await setup();
    const set = (...children: Element[]) => alice.request(xml("iq", { type: "set" }, xml("query", { xmlns: NS }, ...children)));
    const cond = (r: Element) => r.getChild("error")!.children.find((c) => typeof c === "object")!.toString();
    expect(cond(await set())).toContain("bad-request");
    expect(cond(await set(xml("item", { jid: "a@@b" })))).toContain("bad-request");
    expect(cond(await set(xml("item", { jid: "alice@localhost" })))).toContain("not-allowed");
    expect(cond(await set(xml("item", { jid: "x@localhost", subscription: "remove" })))).toContain("item-not-found");
    expect(cond(await set(xml("item", { jid: "x@localhost" }, xml("group", {}, "g"), xml("group", {}, "g"))))).toContain("bad-request");
  });

});
