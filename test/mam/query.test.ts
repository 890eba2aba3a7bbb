// MAM queries: paging, filters, flip-page, counts, errors, events — on both drivers.
import { afterEach, describe, expect, it } from "vitest";
import { defineModule } from "../../src/core/module.js";
import type { ArchiveQueryEvent } from "../../src/mam/index.js";
import { MemoryDriver } from "../../src/storage/memory/driver.js";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import type { ArchiveStore, StorageDriver } from "../../src/storage/types.js";
import type { FakeClient, TestServer } from "../../src/testing/index.js";
import { xml } from "../../src/xmpp/stanza.js";
import { chat, DRIVERS, errorOf, mamQuery, mamServer, NS_MAM, runQuery } from "./helpers.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

const T0 = Date.UTC(2026, 0, 1, 0, 0, 0);

describe.each(DRIVERS)("MAM queries (%s)", (driver) => {
  /** alice and bob exchange `n` messages, one a minute; bob's archive has all. */
  async function conversation(n: number, config: Record<string, unknown> = {}) {
    t = mamServer(driver, config);
    const alice = t.connect("alice@localhost/phone");
    const bob = t.connect("bob@localhost/pc");
    for (let i = 0; i < n; i++) {
      await t.clock.set(T0 + i * 60_000);
      await (i % 2 === 0 ? alice : bob).send(chat(i % 2 === 0 ? "bob@localhost" : "alice@localhost", `m${i}`));
    }
    alice.take();
    bob.take();
    const ids = (await t.host().openStore("archive", "archive").find("bob")).items.map((i) => i.id);
    return { alice, bob, ids };
  }
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => `m${a + i}`);

  it("pages forward and backward through 25 messages", async () => {
    const { bob, ids } = await conversation(25);
    // forward, oldest first
    const p1 = await runQuery(bob, { max: 10 });
    expect(p1.bodies).toEqual(range(0, 10));
    expect(p1.ids).toEqual(ids.slice(0, 10));
    expect([p1.first, p1.last, p1.count, p1.complete]).toEqual([ids[0], ids[9], 25, false]);
    const p2 = await runQuery(bob, { max: 10, after: p1.last });
    expect(p2.bodies).toEqual(range(10, 20));
    expect(p2.complete).toBe(false);
    const p3 = await runQuery(bob, { max: 10, after: p2.last });
    expect(p3.bodies).toEqual(range(20, 25));
    expect([p3.first, p3.last, p3.complete]).toEqual([ids[20], ids[24], true]);
    // backward from the end: <before/> is the last page
    const b1 = await runQuery(bob, { max: 10, before: "" });
    expect(b1.bodies).toEqual(range(15, 25));
    expect([b1.first, b1.last, b1.complete]).toEqual([ids[15], ids[24], false]);
    const b2 = await runQuery(bob, { max: 10, before: b1.first });
    expect(b2.bodies).toEqual(range(5, 15));
    const b3 = await runQuery(bob, { max: 10, before: b2.first });
    expect(b3.bodies).toEqual(range(0, 5));
    expect(b3.complete).toBe(true);
  });

  it("flips pages: results newest first, first/last still in archive order", async () => {
    const { bob, ids } = await conversation(25);
    const p = await runQuery(bob, { max: 5, before: "", flip: true });
    expect(p.bodies).toEqual(["m24", "m23", "m22", "m21", "m20"]);
    expect([p.first, p.last]).toEqual([ids[20], ids[24]]);
    const f = await runQuery(bob, { max: 3, flip: true });
    expect(f.bodies).toEqual(["m2", "m1", "m0"]);
  });

  it("returns result messages in XEP-0313 shape", async () => {
    const { bob, ids } = await conversation(1);
    bob.take();
    await bob.request(mamQuery({ queryId: "f27" }));
    const [m] = bob.take();
    expect(m!.attrs.to).toBe("bob@localhost/pc");
    const result = m!.getChild("result", NS_MAM)!;
    expect(result.attrs).toMatchObject({ queryid: "f27", id: ids[0] });
    const fwd = result.getChild("forwarded", "urn:xmpp:forward:0")!;
    expect(fwd.getChild("delay", "urn:xmpp:delay")!.attrs.stamp).toBe("2026-01-01T00:00:00Z");
    const inner = fwd.getChild("message")!;
    expect(inner.attrs).toMatchObject({ xmlns: "jabber:client", from: "alice@localhost/phone", to: "bob@localhost" });
    expect(inner.getChildText("body")).toBe("m0");
  });

  it("defaults to pages of 20 and caps them at max_archive_query_results", async () => {
    let r = await conversation(60);
    expect((await runQuery(r.bob)).bodies).toHaveLength(20);
    expect((await runQuery(r.bob, { max: 500 })).bodies).toHaveLength(50);
    await t!.stop();
    r = await conversation(30, { max_archive_query_results: 25 });
    expect((await runQuery(r.bob, { max: 100 })).bodies).toHaveLength(25);
  });

  it("answers max=0 with the count only; complete only when nothing matched", async () => {
    const { bob, alice } = await conversation(7);
    const p = await runQuery(bob, { max: 0 });
    expect([p.bodies, p.count, p.complete, p.first]).toEqual([[], 7, false, undefined]);
    const none = await runQuery(alice, { max: 0, fields: { with: "nobody@localhost" } });
    expect([none.count, none.complete]).toEqual([0, true]);
  });

  it("leaves out the count when mam_include_total is false", async () => {
    const { bob } = await conversation(3, { mam_include_total: false });
    const p = await runQuery(bob);
    expect(p.count).toBeUndefined();
    expect(p.bodies).toHaveLength(3);
  });

  it("filters by bare JID", async () => {
    const { alice } = await conversation(4);
    await t!.clock.set(T0 + 3600_000);
    const carol = t!.connect("carol@localhost/x");
    await carol.send(chat("alice@localhost", "from carol"));
    alice.take();
    expect((await runQuery(alice, { fields: { with: "carol@localhost" } })).bodies).toEqual(["from carol"]);
    expect((await runQuery(alice, { fields: { with: "BOB@localhost" } })).bodies).toEqual(range(0, 4));
  });

  it("with a full JID, matches only that full JID (not the bare JID)", async () => {
    t = mamServer(driver);
    const alice = t.connect("alice@localhost/phone");
    const bobPc = t.connect("bob@localhost/pc");
    const bobTab = t.connect("bob@localhost/tablet");
    await bobPc.send(chat("alice@localhost", "from pc 1"));
    await bobTab.send(chat("alice@localhost", "from tablet"));
    await bobPc.send(chat("alice@localhost", "from pc 2"));
    await alice.send(chat("bob@localhost/pc", "to pc"));
    alice.take();
    const p = await runQuery(alice, { fields: { with: "bob@localhost/pc" } });
    expect(p.bodies).toEqual(["from pc 1", "from pc 2", "to pc"]);
    expect(p.count).toBe(3);
    const page = await runQuery(alice, { fields: { with: "bob@localhost/pc" }, max: 1, before: "" });
    expect([page.bodies, page.complete]).toEqual([["to pc"], false]);
  });

  it("filters by start and end, inclusive", async () => {
    const { bob } = await conversation(10);
    const p = await runQuery(bob, { fields: { start: "2026-01-01T00:02:00Z", end: "2026-01-01T00:04:00Z" } });
    expect(p.bodies).toEqual(["m2", "m3", "m4"]);
    const tz = await runQuery(bob, { fields: { start: "2026-01-01T01:08:00+01:00" } });
    expect(tz.bodies).toEqual(["m8", "m9"]);
    const frac = await runQuery(bob, { fields: { end: "2026-01-01T00:00:59.999Z" } });
    expect(frac.bodies).toEqual(["m0"]);
  });

  it("filters by before-id, after-id and ids", async () => {
    const { bob, ids } = await conversation(10);
    expect((await runQuery(bob, { fields: { "after-id": ids[2]!, "before-id": ids[6]! } })).bodies).toEqual(["m3", "m4", "m5"]);
    expect((await runQuery(bob, { fields: { ids: [ids[7]!, ids[1]!] } })).bodies).toEqual(["m1", "m7"]);
    const combined = await runQuery(bob, { fields: { "after-id": ids[2]! }, max: 2, after: ids[4]! });
    expect(combined.bodies).toEqual(["m5", "m6"]);
  });

  it("accepts include-groupchat (a personal archive holds none)", async () => {
    const { bob } = await conversation(2);
    expect((await runQuery(bob, { fields: { "include-groupchat": "true" } })).bodies).toEqual(["m0", "m1"]);
  });

  it("fires archive-query after the results, before <fin/>, with the page in archive order", async () => {
    const events: ArchiveQueryEvent[] = [];
    const watcher = defineModule("watcher", (m) =>
      m.hook("archive-query", (e: ArchiveQueryEvent) => {
        events.push(e);
      }),
    );
    t = mamServer(driver, {}, { modules: [watcher] });
    const alice = t.connect("alice@localhost/phone");
    const bob = t.connect("bob@localhost/pc");
    for (let i = 0; i < 5; i++) await alice.send(chat("bob@localhost", `m${i}`));
    bob.take();
    const received: string[] = [];
    bob.session.filters.out.add((s) => {
      received.push(s.name === "iq" ? "fin" : "result");
      if (s.name === "iq") received.push(`events:${events.length}`);
      return s;
    });
    const items = (await t.host().openStore("archive", "archive").find("bob")).items;
    await runQuery(bob, { max: 2, before: "", flip: true });
    expect(received).toEqual(["result", "result", "fin", "events:1"]);
    expect(events[0]).toMatchObject({ filtered: false, complete: false });
    expect(events[0]!.items).toEqual(items.slice(3).map((i) => ({ id: i.id, pos: i.pos })));
    await runQuery(bob, { fields: { with: "alice@localhost" } });
    expect(events[1]).toMatchObject({ filtered: true, complete: true });
    expect(events[1]!.items).toHaveLength(5);
  });

  it("returns the query form, with ids open for any value", async () => {
    t = mamServer(driver);
    const a = t.connect("a@localhost/1");
    const r = await a.request(xml("iq", { type: "get" }, xml("query", { xmlns: NS_MAM })));
    const x = r.getChild("query", NS_MAM)!.getChild("x", "jabber:x:data")!;
    expect(x.attrs.type).toBe("form");
    const vars = x.getChildren("field").map((f) => f.attrs.var);
    expect(vars).toEqual(["FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids", "include-groupchat"]);
    const ids = x.getChildByAttr("var", "ids")!;
    expect(ids.attrs.type).toBe("list-multi"); // XEP-0313 §4.1.5
    expect(ids.getChild("validate", "http://jabber.org/protocol/xdata-validate")!.getChild("open")).toBeDefined();
  });

  it("answers metadata: first and last of the archive, empty when there is none", async () => {
    const { bob, ids } = await conversation(3);
    const md = (await bob.request(xml("iq", { type: "get" }, xml("metadata", { xmlns: NS_MAM })))).getChild("metadata", NS_MAM)!;
    expect(md.getChild("start")!.attrs).toEqual({ id: ids[0], timestamp: "2026-01-01T00:00:00Z" });
    expect(md.getChild("end")!.attrs).toEqual({ id: ids[2], timestamp: "2026-01-01T00:02:00Z" });
    const carol = t!.connect("carol@localhost/x");
    const empty = (await carol.request(xml("iq", { type: "get" }, xml("metadata", { xmlns: NS_MAM })))).getChild("metadata", NS_MAM)!;
    expect(empty.children).toEqual([]);
  });

  it("advertises mam:2, #extended and sid:0 on the account", async () => {
    t = mamServer(driver);
    const a = t.connect("a@localhost/1");
    const r = await a.request(xml("iq", { type: "get", to: "a@localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    const features = r.getChild("query")!.getChildren("feature").map((f) => f.attrs.var);
    expect(features).toEqual(expect.arrayContaining(["urn:xmpp:mam:2", "urn:xmpp:mam:2#extended", "urn:xmpp:sid:0", "urn:xmpp:mam:2#groupchat-field"]));
    // the server itself has no archive, so it does not advertise one
    const host = await a.request(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    const hostFeatures = host.getChild("query")!.getChildren("feature").map((f) => f.attrs.var);
    expect(hostFeatures).toContain("http://jabber.org/protocol/disco#info");
    expect(hostFeatures.filter((f) => String(f).startsWith("urn:xmpp:mam:"))).toEqual([]);
  });

  describe("errors", () => {
    async function expectError(client: FakeClient, o: Parameters<typeof mamQuery>[0], type: string, condition: string, text?: RegExp) {
      client.take();
      const r = await client.request(mamQuery(o));
      expect(r.attrs.type).toBe("error");
      const e = errorOf(r);
      expect([e.type, e.condition]).toEqual([type, condition]);
      if (text) expect(e.text).toMatch(text);
      expect(client.take().filter((m) => m.getChild("result", NS_MAM))).toEqual([]); // nothing leaks
    }

    it("bad forms, datetimes, JIDs and max are bad-request naming the field", async () => {
      const { bob } = await conversation(3);
      await expectError(bob, { formType: "urn:xmpp:mam:1", fields: {} }, "modify", "bad-request", /FORM_TYPE/);
      await expectError(bob, { formType: null, fields: { with: "alice@localhost" } }, "modify", "bad-request", /FORM_TYPE/);
      await expectError(bob, { fields: { start: "yesterday" } }, "modify", "bad-request", /'start'/);
      await expectError(bob, { fields: { end: "2026-13-45T99:00:00Z" } }, "modify", "bad-request", /'end'/);
      // dates that Date.parse would quietly move: 30 February, 24:00, a 25-hour offset
      await expectError(bob, { fields: { start: "2026-02-30T00:00:00Z" } }, "modify", "bad-request", /'start'/);
      await expectError(bob, { fields: { start: "2026-03-01T24:00:00Z" } }, "modify", "bad-request", /'start'/);
      await expectError(bob, { fields: { start: "2026-03-01T10:00:00+25:00" } }, "modify", "bad-request", /'start'/);
      await expectError(bob, { fields: { with: "not a jid@@" } }, "modify", "bad-request", /'with'/);
      await expectError(bob, { max: -1 }, "modify", "bad-request", /max/);
      await expectError(bob, { max: "ten" }, "modify", "bad-request", /max/);
      await expectError(bob, { fields: { with: ["a@localhost", "b@localhost"] } }, "modify", "bad-request", /more than one/);
    });

    it("an unknown field is feature-not-implemented naming it", async () => {
      const { bob } = await conversation(3);
      await expectError(bob, { fields: { "full-text-search": "hello" } }, "cancel", "feature-not-implemented", /'full-text-search'/);
    });

    it("unknown ids are item-not-found", async () => {
      const { bob, ids } = await conversation(3);
      await expectError(bob, { after: "no-such-id" }, "cancel", "item-not-found");
      await expectError(bob, { before: "no-such-id" }, "cancel", "item-not-found");
      await expectError(bob, { fields: { "before-id": "nope" } }, "cancel", "item-not-found", /before-id/);
      await expectError(bob, { fields: { "after-id": "nope" } }, "cancel", "item-not-found", /after-id/);
      await expectError(bob, { fields: { ids: [ids[0]!, "nope"] } }, "cancel", "item-not-found", /ids/);
    });

    it("another user's ids are unknown", async () => {
      const { alice, ids } = await conversation(3); // ids are bob's
      await expectError(alice, { after: ids[0]! }, "cancel", "item-not-found");
      await expectError(alice, { fields: { ids: [ids[1]!] } }, "cancel", "item-not-found");
    });

    it("a query to another account is forbidden (auth) and reveals nothing", async () => {
      const { alice } = await conversation(3);
      await expectError(alice, { to: "bob@localhost" }, "auth", "forbidden");
      const md = await alice.request(xml("iq", { type: "get", to: "bob@localhost" }, xml("metadata", { xmlns: NS_MAM })));
      expect(errorOf(md).condition).toBe("forbidden");
      expect(md.toString()).not.toContain("start");
    });

    it("a query to one's own bare JID works", async () => {
      const { bob } = await conversation(2);
      expect((await runQuery(bob, { to: "bob@localhost" })).bodies).toEqual(["m0", "m1"]);
    });
  });
});

describe("MAM storage failure", () => {
  /** A driver whose archive fails on reads, as a broken disk would. */
  function failing(base: StorageDriver): StorageDriver {
    return new Proxy(base, {
      get(target, prop, recv) {
        if (prop !== "archive") return Reflect.get(target, prop, recv);
        return (host: string, store: string): ArchiveStore => {
          const a = target.archive(host, store);
          return new Proxy(a, {
            get(ta, p, r) {
              if (p === "find" || p === "get" || p === "summary") {
                return () => Promise.reject(new Error("SQLITE_IOERR: disk I/O error at /var/lib/secret/path.sqlite"));
              }
              return Reflect.get(ta, p, r);
            },
          });
        };
      },
    });
  }

  it.each([
    ["memory", () => new MemoryDriver()],
    ["sqlite", () => new SqliteDriver(":memory:")],
  ] as const)("answers internal-server-error without internals (%s)", async (_n, make) => {
    t = mamServer("memory", {}, { storage: failing(make()) });
    const a = t.connect("a@localhost/1");
    const r = await a.request(mamQuery());
    expect(errorOf(r)).toMatchObject({ type: "cancel", condition: "internal-server-error" });
    expect(r.toString()).not.toMatch(/SQLITE|secret|disk/);
    expect(t.logs.some((l) => l.level === 50)).toBe(true);
  });
});
