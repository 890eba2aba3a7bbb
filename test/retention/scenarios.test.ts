// mam_smart_retention through the test kit, on both drivers: strategies,
// options, and every case where the Lua module deletes undelivered messages.
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Element } from "@xmpp/xml";
import { defineModule } from "../../src/core/module.js";
import type { CleanupReport } from "../../src/retention/index.js";
import { createTestServer, type FakeClient, type TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";

const PHONE = "11111111-1111-4111-8111-111111111111";
const LAPTOP = "22222222-2222-4222-8222-222222222222";
const NS_MAM = "urn:xmpp:mam:2";
const DAY = 86_400_000;

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

describe.each(["memory", "sqlite"] as const)("smart retention (%s)", (driver) => {
  async function setup(config: Record<string, unknown> = {}) {
    t = createTestServer({
      storage: driver,
      config: { modules_enabled: ["mam_smart_retention"], archive_expires_after: "never", ...config },
    });
    const carol = t.connect("carol@localhost/x"); // sends messages to bob
    await t.settle();
    return { carol };
  }
  const bob = async (clientId?: string, resource = clientId ?? "legacy", sm = true) => {
    const c = t!.connect(`bob@localhost/${resource}`, { ...(clientId ? { clientId } : {}), streamManagement: sm });
    await t!.settle();
    return c;
  };
  const say = (from: FakeClient, body: string, to = "bob@localhost") =>
    from.send(xml("message", { to, type: "chat" }, xml("body", {}, body)));
  const archived = async () =>
    (await t!.host().openStore("archive", "archive").find("bob")).items.map((i) => i.stanza.getChildText("body"));
  async function cleanup(): Promise<CleanupReport> {
    let report: CleanupReport | undefined;
    const off = (r: CleanupReport) => {
      report = r;
      return undefined;
    };
    t!.host().events.on("smart-retention-cleanup", off);
    expect(await t!.runScheduled("smart retention cleanup")).toBe(1);
    t!.host().events.off("smart-retention-cleanup", off);
    return report!;
  }
  async function query(c: FakeClient, opts: { with?: string; max?: number; before?: string; after?: string } = {}) {
    const q = xml("query", { xmlns: NS_MAM, queryid: "q" });
    if (opts.with) {
      const x = q.c("x", { xmlns: "jabber:x:data", type: "submit" });
      x.c("field", { var: "FORM_TYPE" }).c("value").t(NS_MAM);
      x.c("field", { var: "with" }).c("value").t(opts.with);
    }
    const set = q.c("set", { xmlns: "http://jabber.org/protocol/rsm" });
    if (opts.max !== undefined) set.c("max").t(String(opts.max));
    if (opts.before !== undefined) set.c("before").t(opts.before);
    if (opts.after !== undefined) set.c("after").t(opts.after);
    c.take();
    const fin = await c.request(xml("iq", { type: "set" }, q));
    const results = c.take().filter((m: Element) => m.getChild("result", NS_MAM));
    return { fin, bodies: results.map((m) => m.getChild("result")!.getChild("forwarded")!.getChild("message")!.getChildText("body")) };
  }

  it("one: deletes a live message once a client acknowledged it, not before", async () => {
    const { carol } = await setup();
    const phone = await bob(PHONE);
    await say(carol, "m1");
    await cleanup();
    expect(await archived()).toEqual(["m1"]); // delivered but not acknowledged
    await phone.ack();
    const r = await cleanup();
    expect(await archived()).toEqual([]);
    expect(r.deleted).toBe(1);
    expect(t!.logs.some((l) => l.msg === "expired 1 delivered messages for 1 users in " + r.ms + " ms")).toBe(true);
  });

  it("keeps everything for a client that never acks", async () => {
    const { carol } = await setup();
    await bob(PHONE);
    for (let i = 0; i < 5; i++) await say(carol, `m${i}`);
    await cleanup();
    expect(await archived()).toHaveLength(5);
  });

  it("keeps messages of a session closed before its ack", async () => {
    const { carol } = await setup();
    const phone = await bob(PHONE);
    await say(carol, "m1");
    phone.close();
    await cleanup();
    expect(await archived()).toEqual(["m1"]);
  });

  it("counts an ack that arrives after a resumption", async () => {
    const { carol } = await setup();
    const phone = await bob(PHONE);
    await say(carol, "m1");
    phone.drop();
    await say(carol, "m2 while away");
    const back = await t!.resume(phone, { h: 0 });
    await cleanup();
    expect(await archived()).toEqual(["m1", "m2 while away"]);
    await back.ack();
    await cleanup();
    expect(await archived()).toEqual([]);
  });

  it("records nothing for a query with max=0", async () => {
    const { carol } = await setup();
    for (let i = 0; i < 3; i++) await say(carol, `m${i}`);
    const phone = await bob(PHONE);
    await query(phone, { max: 0 });
    await phone.ack();
    await cleanup();
    expect(await archived()).toHaveLength(3);
  });

  it("Lua case: syncing the newest page first deletes only that page", async () => {
    const { carol } = await setup();
    for (let i = 0; i < 10; i++) await say(carol, `m${i}`);
    const phone = await bob(PHONE);
    const page = await query(phone, { max: 3, before: "" });
    expect(page.bodies).toEqual(["m7", "m8", "m9"]);
    await phone.ack();
    await cleanup();
    expect(await archived()).toEqual(["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
  });

  it("Lua case: a query filtered by contact deletes only what it returned", async () => {
    const { carol } = await setup();
    const dave = t!.connect("dave@localhost/y");
    for (let i = 0; i < 3; i++) {
      await say(carol, `c${i}`);
      await say(dave, `d${i}`);
    }
    const phone = await bob(PHONE);
    const page = await query(phone, { with: "dave@localhost" });
    expect(page.bodies).toEqual(["d0", "d1", "d2"]);
    await phone.ack();
    await cleanup();
    expect(await archived()).toEqual(["c0", "c1", "c2"]);
  });

  it("Lua case: a live message before catching up does not make older ones deletable", async () => {
    const { carol } = await setup();
    for (let i = 0; i < 3; i++) await say(carol, `old${i}`);
    const phone = await bob(PHONE);
    await say(carol, "live");
    await phone.ack();
    await cleanup();
    expect(await archived()).toEqual(["old0", "old1", "old2"]);
    // catching up (an unfiltered page) then makes them go
    await query(phone);
    await phone.ack();
    await cleanup();
    expect(await archived()).toEqual([]);
  });

  it("Lua case: clients without a client id (or without stream management) neither delete nor block", async () => {
    const { carol } = await setup({ smart_retention_strategy: "all" });
    const legacy = await bob(undefined, "legacy");
    const nosm = await bob(LAPTOP, "nosm", false);
    await say(carol, "m1");
    await query(legacy);
    await legacy.ack();
    await cleanup();
    expect(await archived()).toEqual(["m1"]); // no tracked client acknowledged it
    const phone = await bob(PHONE);
    await query(phone);
    await phone.ack();
    await cleanup();
    expect(await archived()).toEqual([]); // the untracked ones do not block "all"
    void nosm;
  });

  it("counts what a client sent itself as delivered to it", async () => {
    await setup();
    const phone = await bob(PHONE);
    await say(phone, "from bob's phone", "carol@localhost");
    await cleanup();
    expect((await t!.host().openStore("archive", "archive").find("bob")).items).toEqual([]);
  });

  it("all: deletes only what every active client acknowledged", async () => {
    const { carol } = await setup({ smart_retention_strategy: "all" });
    const phone = await bob(PHONE);
    const laptop = await bob(LAPTOP);
    await say(carol, "m1"); // to the bare JID: both have priority 0, both get it
    await phone.ack();
    await cleanup();
    expect(await archived()).toEqual(["m1"]);
    await laptop.ack();
    await cleanup();
    expect(await archived()).toEqual([]);
  });

  it("all: what was archived before a client first appeared does not wait for it", async () => {
    const { carol } = await setup({ smart_retention_strategy: "all" });
    const phone = await bob(PHONE);
    await say(carol, "before the laptop");
    await phone.ack();
    const laptop = await bob(LAPTOP);
    await say(carol, "after the laptop");
    await phone.ack();
    await cleanup();
    expect(await archived()).toEqual(["after the laptop"]);
    await laptop.ack();
    await cleanup();
    expect(await archived()).toEqual([]);
  });

  it("all: a client not seen for smart_retention_client_expiry is forgotten", async () => {
    const { carol } = await setup({ smart_retention_strategy: "all", smart_retention_client_expiry: "7d" });
    const phone = await bob(PHONE);
    const laptop = await bob(LAPTOP);
    laptop.close();
    await say(carol, "m1");
    await phone.ack();
    await cleanup();
    expect(await archived()).toEqual(["m1"]);
    await t!.clock.advance(8 * DAY);
    const fresh = await bob(PHONE, "phone2"); // the phone is seen again; the laptop is not
    void fresh;
    await cleanup();
    expect(await archived()).toEqual([]);
    expect(await t!.host().openStore("mam_smart_retention", "map").get("bob", LAPTOP)).toBeUndefined();
  });

  it("smart_retention_min: only messages older than the minimum go", async () => {
    const { carol } = await setup({ smart_retention_min: "1d" });
    const phone = await bob(PHONE);
    await say(carol, "m1");
    await phone.ack();
    await cleanup();
    expect(await archived()).toEqual(["m1"]);
    await t!.clock.advance(DAY + 1000);
    await cleanup();
    expect(await archived()).toEqual([]);
  });

  it("deletes in batches of smart_retention_batch_size and compacts the intervals", async () => {
    const { carol } = await setup({ smart_retention_batch_size: 2 });
    const phone = await bob(PHONE);
    const dave = t!.connect("dave@localhost/y");
    for (let i = 0; i < 4; i++) {
      await say(carol, `c${i}`);
      await say(dave, `d${i}`);
    }
    const page = await query(phone, { with: "carol@localhost" });
    expect(page.bodies).toHaveLength(4);
    await phone.ack();
    // dave's messages went live to the phone too: acked with the page
    await cleanup();
    expect(await archived()).toEqual([]);
    const rec = (await t!.host().openStore("mam_smart_retention", "map").get("bob", PHONE)) as { delivered: number[][] };
    expect(rec.delivered).toHaveLength(1);
  });

  it("keeps one interval for live deliveries interleaved with other users' archives", async () => {
    const { carol } = await setup();
    const phone = await bob(PHONE);
    t!.connect("dave@localhost/y", { streamManagement: true });
    await t!.settle();
    const tracked = async () => (await t!.host().openStore("mam_smart_retention", "map").get("bob", PHONE)) as { delivered: number[][] };
    // bob's archive positions are far apart: dave's messages (and carol's own copies) lie between
    for (let i = 0; i < 30; i++) {
      await say(carol, `b${i}`);
      await say(carol, `d${i}`, "dave@localhost");
      if (i % 7 === 6) await phone.ack();
    }
    await phone.ack();
    await t!.host().events.fire("smart-retention-run", { dryRun: true }); // writes the buffered tracking
    // the first delivery after start is a single position; every later one extends it
    expect((await tracked()).delivered).toHaveLength(1);
    await cleanup();
    expect(await archived()).toEqual([]);
    const daves = (await t!.host().openStore("archive", "archive").find("dave")).items;
    expect(daves).toHaveLength(30); // the range covered other users' positions; their items stay
  });

  it("writes a new client at once, and acks within a second, in one go, without waiting for a cleanup", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const { carol } = await setup();
      const phone = await bob(PHONE);
      const store = t!.host().openStore("mam_smart_retention", "map");
      // the first-seen position must not wait: lost, the client would later look newer than it is
      await new Promise((r) => setImmediate(r)); // (the flush timer is fake: only an immediate write can land)
      expect(await store.get("bob", PHONE)).toMatchObject({ delivered: [], lastSeen: expect.any(Number), firstSeen: expect.any(Number) });
      await say(carol, "m1");
      await phone.ack();
      await say(carol, "m2");
      await phone.ack();
      await new Promise((r) => setImmediate(r));
      expect(((await store.get("bob", PHONE)) as { delivered: number[][] }).delivered).toEqual([]); // buffered
      await vi.advanceTimersByTimeAsync(999);
      await t!.settle();
      expect(((await store.get("bob", PHONE)) as { delivered: number[][] }).delivered).toEqual([]); // still buffered
      await vi.advanceTimersByTimeAsync(1);
      await t!.settle();
      expect(((await store.get("bob", PHONE)) as { delivered: number[][] }).delivered).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it("logs an error for one user and goes on with the others", async () => {
    const { carol } = await setup();
    const phone = await bob(PHONE);
    await say(carol, "m1");
    await phone.ack();
    await new Promise((r) => setImmediate(r));
    await t!.host().openStore("mam_smart_retention", "map").set("zed", PHONE, { delivered: [[5, 2]], firstSeen: 0, lastSeen: 0 });
    const r = await cleanup();
    expect(r.users.find((u) => u.user === "zed")!.error).toBeDefined();
    expect(await archived()).toEqual([]);
    expect(t!.logs.some((l) => l.level === 50 && l.user === "zed")).toBe(true);
  });

  it("forgets a deleted account's tracking", async () => {
    const { carol } = await setup();
    const phone = await bob(PHONE);
    await say(carol, "m1");
    await phone.ack();
    await new Promise((r) => setImmediate(r));
    await t!.host().deleteUser("bob");
    expect(await t!.host().openStore("mam_smart_retention", "map").getAll("bob")).toBeUndefined();
  });

  it("a dry run reports per user and client without deleting", async () => {
    const { carol } = await setup();
    const phone = await bob(PHONE);
    await say(carol, "m1");
    await phone.ack();
    await new Promise((r) => setImmediate(r));
    const report = (await t!.host().events.fire("smart-retention-run", { dryRun: true })) as CleanupReport;
    expect(report).toMatchObject({ dryRun: true, deleted: 1, strategy: "one" });
    expect(report.users[0]!.clients[0]!.client).toBe(PHONE);
    expect(await archived()).toEqual(["m1"]);
  });
});

describe("smart retention configuration", () => {
  it("loads mam and smacks itself", () => {
    t = createTestServer({ config: { modules_enabled: ["mam_smart_retention"] } });
    expect(t.host().isLoaded("mam")).toBe(true);
    expect(t.host().isLoaded("smacks")).toBe(true);
  });

  it("refuses an unknown strategy and a bad schedule at start-up", () => {
    expect(() => createTestServer({ config: { modules_enabled: ["mam_smart_retention"], smart_retention_strategy: "some" } })).toThrow(
      'config: smart_retention_strategy (module mam_smart_retention): expected one of "one", "all", got "some"',
    );
    expect(() => createTestServer({ config: { modules_enabled: ["mam_smart_retention"], smart_retention_schedule: "daily" } })).toThrow(
      /smart_retention_schedule.*expected a node-cron expression/,
    );
  });

  it("never runs two cleanups at once", async () => {
    let started = 0;
    const probe = defineModule("probe", (m) => m.hook("smart-retention-cleanup", () => void started++));
    t = createTestServer({ config: { modules_enabled: ["mam_smart_retention"] }, modules: [probe] });
    const a = t.host().events.fire("smart-retention-run", {}) as Promise<CleanupReport>;
    const b = t.host().events.fire("smart-retention-run", {}) as Promise<CleanupReport>;
    expect(a).toBe(b);
    await Promise.all([a, b]);
    expect(started).toBe(1);
  });
});
