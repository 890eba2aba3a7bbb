// One contract, every driver: everything here must hold for memory, SQLite and
// PostgreSQL alike (PostgreSQL: a private cluster, a fresh database per test;
// reported as skipped where PostgreSQL is not installed).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PostgresDriver } from "../../src/storage/postgres/driver.js";
import { MemoryDriver } from "../../src/storage/memory/driver.js";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import { type ArchiveRef, NON_STRING_KEYS, StorageError, type StorageDriver } from "../../src/storage/types.js";
import { Element, xml } from "../../src/xmpp/stanza.js";
import { type PgCluster, pgAvailable, startPg } from "../helpers/pg.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const drivers: [string, () => StorageDriver][] = [
  ["memory", () => new MemoryDriver()],
  [
    "sqlite",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "mamkit-contract-"));
      dirs.push(dir);
      return new SqliteDriver(join(dir, "db", "test.sqlite"));
    },
  ],
];

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const msg = (n: number, from = "juliet@capulet.example/balcony") =>
  xml("message", { type: "chat", from, to: "romeo@montague.example", id: `m${n}` }, xml("body", {}, `text ${n} <&'">`));

describe.each(drivers)("storage contract: %s", (_name, open) => contract(open));

describe.skipIf(!pgAvailable)("storage contract: postgres", () => {
  let cluster: PgCluster;
  let url = "";
  beforeAll(async () => {
    cluster = await startPg();
  }, 60_000);
  afterAll(() => cluster?.stop());
  beforeEach(async () => {
    url = await cluster.createDatabase();
  });
  contract(() => new PostgresDriver({ url }));
});

function contract(open: () => StorageDriver): void {
  describe("keyval", () => {
    it("stores and returns a user's table with every value type", async () => {
      const d = open();
      const kv = d.keyval("montague.example", "test");
      expect(await kv.get("romeo")).toBeUndefined();
      const stanza = xml("presence", { type: "unavailable" }, xml("status", {}, "gone"));
      await kv.set("romeo", { s: "text", n: 42, f: 1.5, b: false, t: true, j: { a: [1, 2, { c: null }] }, x: stanza });
      const got = (await kv.get("romeo"))!;
      expect(got).toMatchObject({ s: "text", n: 42, f: 1.5, b: false, t: true, j: { a: [1, 2, { c: null }] } });
      expect(got.x).toBeInstanceOf(Element);
      expect((got.x as Element).getChildText("status")).toBe("gone");
      expect(await kv.users()).toEqual(["romeo"]);
      await d.close();
    });

    it("replaces the whole table on set and deletes it with undefined", async () => {
      const d = open();
      const kv = d.keyval("h", "s");
      await kv.set("u", { a: 1, b: 2 });
      await kv.set("u", { c: 3 });
      expect(await kv.get("u")).toEqual({ c: 3 });
      await kv.set("u", undefined);
      expect(await kv.get("u")).toBeUndefined();
      expect(await kv.users()).toEqual([]);
      await d.close();
    });

    it("keeps host-wide data (user undefined) apart from users and out of users()", async () => {
      const d = open();
      const kv = d.keyval("h", "s");
      await kv.set(undefined, { k: "host" });
      await kv.set("u", { k: "user" });
      expect(await kv.get(undefined)).toEqual({ k: "host" });
      expect(await kv.get("u")).toEqual({ k: "user" });
      expect(await kv.users()).toEqual(["u"]);
      await d.close();
    });

    it("round-trips non-string keys as Prosody does", async () => {
      const d = open();
      const kv = d.keyval("h", "archive_prefs");
      await kv.set("juliet", { "mercutio@x": false, [NON_STRING_KEYS]: new Map([[false, true]]) });
      const got = (await kv.get("juliet"))!;
      expect(got["mercutio@x"]).toBe(false);
      expect(got[NON_STRING_KEYS]?.get(false)).toBe(true);
      await d.close();
    });

    it("separates hosts and stores", async () => {
      const d = open();
      await d.keyval("a", "s").set("u", { v: 1 });
      expect(await d.keyval("b", "s").get("u")).toBeUndefined();
      expect(await d.keyval("a", "t").get("u")).toBeUndefined();
      await d.close();
    });

    it("refuses values it cannot store, leaving the old data intact", async () => {
      const d = open();
      const kv = d.keyval("h", "s");
      await kv.set("u", { a: 1 });
      await expect(kv.set("u", { a: 2, bad: () => 1 })).rejects.toThrow(StorageError);
      await expect(kv.set("u", { a: Number.NaN })).rejects.toThrow(StorageError);
      expect(await kv.get("u")).toEqual({ a: 1 });
      await d.close();
    });
  });

  describe("map", () => {
    it("gets, sets and deletes single keys", async () => {
      const d = open();
      const m = d.map("h", "roster");
      expect(await m.get("u", "k")).toBeUndefined();
      await m.set("u", "k", { name: "Juliet" });
      await m.set("u", "n", 7);
      expect(await m.get("u", "k")).toEqual({ name: "Juliet" });
      await m.set("u", "k", undefined);
      expect(await m.get("u", "k")).toBeUndefined();
      await m.setKeys("u", { a: "x", n: undefined });
      expect(await m.getAll("u")).toEqual({ a: "x" });
      expect(await m.users()).toEqual(["u"]);
      await expect(m.get("u", "")).rejects.toThrow(StorageError);
      await d.close();
    });

    it("shares rows with the keyval store of the same name", async () => {
      const d = open();
      await d.keyval("h", "s").set("u", { a: 1, b: "two" });
      expect(await d.map("h", "s").get("u", "b")).toBe("two");
      await d.map("h", "s").set("u", "c", true);
      expect(await d.keyval("h", "s").get("u")).toEqual({ a: 1, b: "two", c: true });
      await d.close();
    });
  });

  describe("archive", () => {
    async function filled(n = 10) {
      const d = open();
      const a = d.archive("montague.example", "archive");
      const refs: ArchiveRef[] = [];
      for (let i = 0; i < n; i++) {
        const w = i % 2 === 0 ? "juliet@capulet.example" : "tybalt@capulet.example";
        refs.push(await a.append("romeo", { stanza: msg(i), when: T0 + i * 60_000, with: w }));
      }
      return { d, a, refs };
    }

    it("appends with unique ids and strictly increasing positions", async () => {
      const { d, a, refs } = await filled(20);
      expect(new Set(refs.map((r) => r.id)).size).toBe(20);
      for (let i = 1; i < refs.length; i++) expect(refs[i]!.pos).toBeGreaterThan(refs[i - 1]!.pos);
      for (const r of refs) expect(r.id).toMatch(/^[0-9a-f-]{36}$/);
      expect((await a.find("romeo")).items.map((i) => i.id)).toEqual(refs.map((r) => r.id));
      await d.close();
    });

    it("gives each append the user's previous position (prev), with none of the user's items between", async () => {
      const d = open();
      const a = d.archive("h", "archive");
      const other = d.archive("h", "other store");
      const refs: Record<string, ArchiveRef[]> = { u: [], v: [] };
      // interleaved users and stores, so that one user's positions are not adjacent
      for (let i = 0; i < 12; i++) {
        const user = i % 3 === 0 ? "v" : "u";
        refs[user]!.push(await a.append(user, { stanza: msg(i), when: T0, with: "x@y" }));
        await other.append(user, { stanza: msg(i), when: T0, with: "x@y" });
      }
      for (const list of Object.values(refs)) {
        expect(list[0]!.prev).toBeUndefined(); // nothing before, in this store
        for (let i = 1; i < list.length; i++) {
          expect(list[i]!.prev).toBe(list[i - 1]!.pos);
          expect(list[i]!.pos - list[i]!.prev!).toBeGreaterThan(1); // the gap holds other users' and stores' items
        }
      }
      // deleting the previous item does not make prev wrong: still none of the user's items between
      await a.delete("u", { ids: [refs.u!.at(-1)!.id] });
      const next = await a.append("u", { stanza: msg(99), when: T0, with: "x@y" });
      expect(next.prev).toBeGreaterThanOrEqual(refs.u!.at(-2)!.pos);
      expect((await a.find("u", { afterPos: next.prev!, beforePos: next.pos })).items).toEqual([]);
      await d.close();
    });

    it("replaces an item appended again with the same id, even the user's only one", async () => {
      const d = open();
      const a = d.archive("h", "archive");
      await a.append("bob", { id: "x", stanza: msg(1), when: T0, with: "c@h" });
      const again = await a.append("bob", { id: "x", stanza: msg(2), when: T0 + 1000, with: "c@h" });
      expect((await a.find("bob")).items.map((i) => [i.id, i.pos, i.stanza.getChildText("body")])).toEqual([["x", again.pos, `text 2 <&'">`]]);
      await d.close();
    });

    it("returns the stanza, time (whole seconds), partner and position", async () => {
      const { d, a, refs } = await filled(1);
      const item = (await a.get("romeo", refs[0]!.id))!;
      expect(item).toMatchObject({ id: refs[0]!.id, pos: refs[0]!.pos, when: T0, with: "juliet@capulet.example" });
      expect(item.stanza.getChildText("body")).toBe(`text 0 <&'">`);
      expect(item.stanza.attrs.from).toBe("juliet@capulet.example/balcony");
      const sub = await a.append("romeo", { stanza: msg(1), when: T0 + 1999, with: "x@y" });
      expect(sub.when).toBe(T0 + 1000);
      expect(await a.get("romeo", "no-such-id")).toBeUndefined();
      expect(await a.get("juliet", refs[0]!.id)).toBeUndefined();
      await d.close();
    });

    it("does not let a caller's later change to the stanza reach the archive", async () => {
      const d = open();
      const a = d.archive("h", "archive");
      const s = msg(1);
      const { id } = await a.append("u", { stanza: s, when: T0, with: "x@y" });
      s.getChild("body")!.children = ["changed"];
      (await a.get("u", id))!.stanza.getChild("body")!.children = ["changed too"];
      expect((await a.get("u", id))!.stanza.getChildText("body")).toBe(`text 1 <&'">`);
      await d.close();
    });

    it("filters by with, start and end (inclusive) and ids", async () => {
      const { d, a, refs } = await filled();
      expect((await a.find("romeo", { with: "juliet@capulet.example" })).items.map((i) => i.id)).toEqual(
        refs.filter((_, i) => i % 2 === 0).map((r) => r.id),
      );
      const mid = (await a.find("romeo", { start: T0 + 2 * 60_000, end: T0 + 4 * 60_000 })).items;
      expect(mid.map((i) => i.id)).toEqual(refs.slice(2, 5).map((r) => r.id));
      expect((await a.find("romeo", { start: T0 + 2 * 60_000 + 1 })).items[0]!.id).toBe(refs[3]!.id);
      const some = (await a.find("romeo", { ids: [refs[7]!.id, refs[1]!.id, "unknown"] })).items;
      expect(some.map((i) => i.id)).toEqual([refs[1]!.id, refs[7]!.id]);
      await d.close();
    });

    it("pages with limit, after/before ids, positions, reverse and total", async () => {
      const { d, a, refs } = await filled();
      const p1 = await a.find("romeo", { limit: 3, total: true });
      expect(p1.items.map((i) => i.id)).toEqual(refs.slice(0, 3).map((r) => r.id));
      expect(p1.total).toBe(10);
      const p2 = await a.find("romeo", { limit: 3, after: refs[2]!.id, total: true });
      expect(p2.items.map((i) => i.id)).toEqual(refs.slice(3, 6).map((r) => r.id));
      expect(p2.total).toBe(10); // paging does not change the count of the result set
      const last = await a.find("romeo", { limit: 3, reverse: true });
      expect(last.items.map((i) => i.id)).toEqual([refs[9]!.id, refs[8]!.id, refs[7]!.id]);
      const before = await a.find("romeo", { limit: 2, before: refs[5]!.id, reverse: true });
      expect(before.items.map((i) => i.id)).toEqual([refs[4]!.id, refs[3]!.id]);
      const between = await a.find("romeo", { after: refs[1]!.id, before: refs[4]!.id });
      expect(between.items.map((i) => i.id)).toEqual([refs[2]!.id, refs[3]!.id]);
      const byPos = await a.find("romeo", { afterPos: refs[6]!.pos, beforePos: refs[9]!.pos });
      expect(byPos.items.map((i) => i.id)).toEqual([refs[7]!.id, refs[8]!.id]);
      const filteredTotal = await a.find("romeo", { with: "tybalt@capulet.example", limit: 1, total: true });
      expect(filteredTotal.total).toBe(5);
      expect(await a.find("romeo", { limit: 0, total: true })).toEqual({ items: [], total: 10 });
      expect(await a.find("nobody", { total: true })).toEqual({ items: [], total: 0 });
      await d.close();
    });

    it("throws item-not-found for an unknown after/before id, or another user's id", async () => {
      const { d, a, refs } = await filled(3);
      await a.append("juliet", { stanza: msg(9), when: T0, with: "romeo@montague.example" });
      const julietId = (await a.find("juliet")).items[0]!.id;
      for (const q of [{ after: "nope" }, { before: "nope" }, { after: julietId }]) {
        try {
          await a.find("romeo", q);
          expect.unreachable();
        } catch (e) {
          expect(e).toBeInstanceOf(StorageError);
          expect((e as StorageError).code).toBe("item-not-found");
        }
      }
      expect((await a.find("romeo", { after: refs[0]!.id })).items).toHaveLength(2);
      await d.close();
    });

    it("deletes by position range, by time, by id, in limited batches, and across users", async () => {
      const { d, a, refs } = await filled();
      await a.append("juliet", { stanza: msg(50), when: T0, with: "romeo@montague.example" });
      expect(await a.delete("romeo", { fromPos: refs[1]!.pos, toPos: refs[2]!.pos })).toBe(2);
      expect(await a.delete("romeo", { end: T0 + 3 * 60_000 })).toBe(2); // items 0 and 3
      expect(await a.delete("romeo", { ids: [refs[9]!.id] })).toBe(1);
      expect(await a.delete("romeo", { limit: 2 })).toBe(2); // oldest first: 4 and 5
      expect((await a.find("romeo")).items.map((i) => i.id)).toEqual(refs.slice(6, 9).map((r) => r.id));
      expect((await a.summary("juliet")).count).toBe(1);
      expect(await a.delete(null, { end: T0 })).toBe(1); // every user's items up to T0
      expect(await a.users()).toEqual(["romeo"]);
      expect(await a.delete("romeo")).toBe(3);
      expect(await a.users()).toEqual([]);
      await d.close();
    });

    it("summarises first and last item and count", async () => {
      const { d, a, refs } = await filled(4);
      expect(await a.summary("romeo")).toEqual({
        count: 4,
        first: { id: refs[0]!.id, pos: refs[0]!.pos, when: T0 },
        last: { id: refs[3]!.id, pos: refs[3]!.pos, when: T0 + 3 * 60_000 },
      });
      expect(await a.summary("nobody")).toEqual({ count: 0 });
      await d.close();
    });

    it("replaces an item appended again with the same id, at a new position", async () => {
      const d = open();
      const a = d.archive("h", "archive");
      const first = await a.append("u", { stanza: msg(1), when: T0, with: "x@y", id: "fixed-id" });
      await a.append("u", { stanza: msg(2), when: T0, with: "x@y" });
      const again = await a.append("u", { stanza: msg(3), when: T0, with: "x@y", id: "fixed-id" });
      expect(again.pos).toBeGreaterThan(first.pos);
      const items = (await a.find("u")).items;
      expect(items).toHaveLength(2);
      expect(items[1]!.stanza.attrs.id).toBe("m3");
      await d.close();
    });

    it("keeps positions increasing across users and stores", async () => {
      const d = open();
      const p1 = (await d.archive("h", "archive").append("a", { stanza: msg(1), when: T0, with: "x@y" })).pos;
      const p2 = (await d.archive("h", "other").append("b", { stanza: msg(2), when: T0, with: "x@y" })).pos;
      const p3 = (await d.archive("h", "archive").append("a", { stanza: msg(3), when: T0, with: "x@y" })).pos;
      expect(p2).toBeGreaterThan(p1);
      expect(p3).toBeGreaterThan(p2);
      await d.close();
    });
  });

  it("deleteUser removes a user's data in every store and nobody else's", async () => {
    const d = open();
    await d.keyval("h", "accounts").set("u", { salt: "x" });
    await d.map("h", "roster").set("u", "a@b", { name: "A" });
    await d.archive("h", "archive").append("u", { stanza: msg(1), when: T0, with: "x@y" });
    await d.keyval("h", "accounts").set("v", { salt: "y" });
    await d.archive("h", "archive").append("v", { stanza: msg(1), when: T0, with: "x@y" });
    await d.keyval("other", "accounts").set("u", { salt: "z" });
    await d.deleteUser("h", "u");
    expect(await d.keyval("h", "accounts").get("u")).toBeUndefined();
    expect(await d.map("h", "roster").get("u", "a@b")).toBeUndefined();
    expect((await d.archive("h", "archive").summary("u")).count).toBe(0);
    expect(await d.keyval("h", "accounts").get("v")).toEqual({ salt: "y" });
    expect((await d.archive("h", "archive").summary("v")).count).toBe(1);
    expect(await d.keyval("other", "accounts").get("u")).toEqual({ salt: "z" });
    await d.close();
  });

  it("runs transactions (nested ones join the outer one)", async () => {
    const d = open();
    const kv = d.map("h", "s");
    await d.transaction(async () => {
      await kv.set("u", "a", 1);
      await d.transaction(() => kv.set("u", "b", 2));
    });
    expect(await kv.getAll("u")).toEqual({ a: 1, b: 2 });
    await d.close();
  });
}
