// Preferences, mam_smart_enable, expiry, quota and account deletion — on both drivers.
import { afterEach, describe, expect, it } from "vitest";
import { NON_STRING_KEYS } from "../../src/storage/types.js";
import type { FakeClient, TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";
import { chat, DRIVERS, errorOf, mamServer, NS_MAM, runQuery } from "./helpers.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

function prefsIq(def: string, always: string[] = [], never: string[] = []) {
  return xml(
    "iq",
    { type: "set" },
    xml(
      "prefs",
      { xmlns: NS_MAM, default: def },
      xml("always", {}, ...always.map((j) => xml("jid", {}, j))),
      xml("never", {}, ...never.map((j) => xml("jid", {}, j))),
    ),
  );
}

describe.each(DRIVERS)("MAM preferences (%s)", (driver) => {
  const bodies = async (user: string) =>
    (await t!.host().openStore("archive", "archive").find(user)).items.map((i) => i.stanza.getChildText("body"));

  async function getPrefs(c: FakeClient) {
    const p = (await c.request(xml("iq", { type: "get" }, xml("prefs", { xmlns: NS_MAM })))).getChild("prefs", NS_MAM)!;
    return {
      default: p.attrs.default,
      always: p.getChild("always")!.getChildren("jid").map((j) => j.getText()),
      never: p.getChild("never")!.getChildren("jid").map((j) => j.getText()),
    };
  }

  it("reports the configured default until set, then what was set", async () => {
    t = mamServer(driver);
    const bob = t.connect("bob@localhost/pc");
    expect(await getPrefs(bob)).toEqual({ default: "always", always: [], never: [] });
    const r = await bob.request(prefsIq("roster", ["carol@localhost"], ["mallory@localhost", "eve@localhost/laptop"]));
    expect(r.attrs.type).toBe("result");
    expect(await getPrefs(bob)).toEqual({ default: "roster", always: ["carol@localhost"], never: ["eve@localhost/laptop", "mallory@localhost"] });
  });

  it("stores prefs the way Prosody does", async () => {
    t = mamServer(driver);
    const bob = t.connect("bob@localhost/pc");
    await bob.request(prefsIq("always", [], ["mercutio@localhost"]));
    const raw = (await t.host().openStore("archive_prefs", "keyval").get("bob"))!;
    expect(raw["mercutio@localhost"]).toBe(false);
    expect(raw[NON_STRING_KEYS]!.get(false)).toBe(true);
  });

  it("never/always lists and defaults decide what is archived", async () => {
    t = mamServer(driver);
    const bob = t.connect("bob@localhost/pc");
    const alice = t.connect("alice@localhost/1");
    const eveLaptop = t.connect("eve@localhost/laptop");
    const evePhone = t.connect("eve@localhost/phone");
    await bob.request(prefsIq("always", [], ["alice@localhost", "eve@localhost/laptop"]));
    await alice.send(chat("bob@localhost", "from alice"));
    await eveLaptop.send(chat("bob@localhost", "from eve's laptop"));
    await evePhone.send(chat("bob@localhost", "from eve's phone"));
    expect(await bodies("bob")).toEqual(["from eve's phone"]); // a full JID matches only that full JID
    await bob.request(prefsIq("never", ["alice@localhost"]));
    await alice.send(chat("bob@localhost", "alice again"));
    await evePhone.send(chat("bob@localhost", "eve again"));
    expect(await bodies("bob")).toEqual(["from eve's phone", "alice again"]);
    // the sender's own prefs decide for the sender's copy
    await bob.send(chat("alice@localhost", "outgoing to alice"));
    await bob.send(chat("eve@localhost", "outgoing to eve"));
    expect(await bodies("bob")).toEqual(["from eve's phone", "alice again", "outgoing to alice"]);
  });

  it("default roster archives only contacts in the roster", async () => {
    t = mamServer(driver, { default_archive_policy: "roster" });
    const bob = t.connect("bob@localhost/pc");
    const alice = t.connect("alice@localhost/1");
    const stranger = t.connect("stranger@localhost/1");
    await t.host().openStore("roster", "map").set("bob", "alice@localhost", { subscription: "both", groups: {} });
    await alice.send(chat("bob@localhost", "friend"));
    await stranger.send(chat("bob@localhost", "stranger"));
    expect(await bodies("bob")).toEqual(["friend"]);
    expect((await getPrefs(bob)).default).toBe("roster");
  });

  it("default_archive_policy false archives nothing unless a user asks", async () => {
    t = mamServer(driver, { default_archive_policy: false });
    const bob = t.connect("bob@localhost/pc");
    const alice = t.connect("alice@localhost/1");
    await alice.send(chat("bob@localhost", "one"));
    expect(await bodies("bob")).toEqual([]);
    await bob.request(prefsIq("always"));
    await alice.send(chat("bob@localhost", "two"));
    expect(await bodies("bob")).toEqual(["two"]);
  });

  it("mam_smart_enable starts archiving for a user at the first query", async () => {
    t = mamServer(driver, { mam_smart_enable: true });
    const bob = t.connect("bob@localhost/pc");
    const alice = t.connect("alice@localhost/1");
    await alice.send(chat("bob@localhost", "before"));
    expect(await bodies("bob")).toEqual([]);
    await runQuery(bob);
    await alice.send(chat("bob@localhost", "after"));
    expect(await bodies("bob")).toEqual(["after"]);
  });

  it("refuses bad prefs", async () => {
    t = mamServer(driver);
    const bob = t.connect("bob@localhost/pc");
    expect(errorOf(await bob.request(prefsIq("sometimes"))).condition).toBe("bad-request");
    expect(errorOf(await bob.request(prefsIq("always", ["bad@@jid"]))).condition).toBe("jid-malformed");
    expect(errorOf(await bob.request(xml("iq", { type: "set", to: "alice@localhost" }, xml("prefs", { xmlns: NS_MAM, default: "never" })))).condition).toBe("forbidden");
  });

  it("rejects an invalid default_archive_policy at start-up", () => {
    expect(() => mamServer(driver, { default_archive_policy: "sometimes" })).toThrow(
      'config: default_archive_policy (module mam): expected one of true, false, "roster", got "sometimes"',
    );
  });
});

describe.each(DRIVERS)("MAM expiry, quota, account deletion (%s)", (driver) => {
  const count = async (user: string) => (await t!.host().openStore("archive", "archive").summary(user)).count;

  it("expires messages older than archive_expires_after on the daily task, as the clock passes it, in batches", async () => {
    t = mamServer(driver, { archive_expires_after: "2d", archive_cleanup_batch_size: 3 });
    const alice = t.connect("alice@localhost/1");
    t.connect("bob@localhost/1");
    const day = 86_400_000;
    for (let i = 0; i < 10; i++) {
      await t.clock.set(Date.UTC(2026, 0, 1) + i * day);
      await alice.send(chat("bob@localhost", `day ${i}`));
    }
    // the clock passed the daily task nine times on the way: it expired as it went
    const expired = () =>
      t!.logs.map((l) => /^expired (\d+) archived messages$/.exec(l.msg ?? "")).reduce((n, m) => n + (m ? Number(m[1]) : 0), 0);
    expect(expired()).toBeGreaterThan(0);
    await t.clock.set(Date.UTC(2026, 0, 1) + 10 * day);
    expect(await t.runScheduled("archive expiry")).toBe(1);
    const left = (await t.host().openStore("archive", "archive").find("bob")).items.map((i) => i.stanza.getChildText("body"));
    expect(left).toEqual(["day 8", "day 9"]);
    expect(await count("alice")).toBe(2);
    expect(expired()).toBe(16);
  });

  it('has no expiry task with archive_expires_after "never"', async () => {
    t = mamServer(driver, { archive_expires_after: "never" });
    expect(t.scheduledTasks.map((x) => x.name)).not.toContain("archive expiry");
    await expect(t.runScheduled("archive expiry")).rejects.toThrow(/no scheduled task is named "archive expiry"/);
  });

  it("keeps at most storage_archive_item_limit items, dropping the oldest", async () => {
    t = mamServer(driver, { storage_archive_item_limit: 5, archive_expires_after: "never" });
    const alice = t.connect("alice@localhost/1");
    for (let i = 0; i < 8; i++) await alice.send(chat("bob@localhost", `m${i}`));
    const left = (await t.host().openStore("archive", "archive").find("bob")).items.map((i) => i.stanza.getChildText("body"));
    expect(left).toEqual(["m3", "m4", "m5", "m6", "m7"]);
  });

  it("removes a deleted account's archive and prefs", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/1");
    const bob = t.connect("bob@localhost/1");
    await bob.request(prefsIq("always", [], ["x@localhost"]));
    await alice.send(chat("bob@localhost", "hi"));
    expect(await count("bob")).toBe(1);
    await t.host().deleteUser("bob");
    expect(await count("bob")).toBe(0);
    expect(await t.host().openStore("archive_prefs", "keyval").get("bob")).toBeUndefined();
    expect(await count("alice")).toBe(1);
    expect(bob.session.closed).toBe(true);
  });
});
