// Prosody's "when" column is int4 (Unix seconds, up to 2038-01-19T03:14:07Z). A MAM query may
// still name any XEP-0082 date: its `start` and `end` are held to the int4 range before they
// reach PostgreSQL (which otherwise refuses the parameter: value "2208988800" is out of range for
// type integer), keeping their meaning: an `end` after 2038 takes everything up to the last
// second, a `start` after the last second matches nothing. Skipped where no PostgreSQL is installed.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PostgresDriver } from "mamkit";
import { createTestServer, type TestServer } from "mamkit/testing";
import { xml } from "@xmpp/xml";
import { chat, runQuery } from "../../mam/helpers.js";
import { type PgCluster, pgAvailable, startPg } from "../../helpers/pg.js";

const LAST = Date.parse("2038-01-19T03:14:07Z"); // 2^31 - 1 seconds
const T0 = Date.parse("2026-01-01T00:00:00Z");
const message = (body: string) => xml("message", { type: "chat", to: "bob@localhost" }, xml("body", {}, body));

describe.skipIf(!pgAvailable)("MAM bounds beyond Prosody's int4 \"when\" (postgres driver)", () => {
  let cluster: PgCluster;
  let driver: PostgresDriver | undefined;
  let t: TestServer | undefined;
  beforeAll(async () => {
    cluster = await startPg({ fsync: false });
  }, 60_000);
  afterEach(async () => {
    if (t) await t.stop();
    else await driver?.close();
    t = undefined;
    driver = undefined;
  });
  afterAll(() => cluster?.stop());

  async function freshDriver(): Promise<PostgresDriver> {
    driver = new PostgresDriver({ url: cluster.withRole(await cluster.createDatabase()) });
    await driver.ready();
    return driver;
  }

  it("the archive store answers start/end after 2038 and before 1901, with the same meaning as inside the range", async () => {
    const a = (await freshDriver()).archive("localhost", "archive");
    await a.append("alice", { when: T0, with: "bob@localhost", stanza: message("2026") });
    // the very last second int4 holds
    await a.append("alice", { when: LAST, with: "bob@localhost", stanza: message("last second") });
    const bodies = async (q: Parameters<typeof a.find>[1]) => {
      const page = await a.find("alice", { ...q, total: true });
      return { total: page.total, bodies: page.items.map((i) => i.stanza.getChildText("body")) };
    };
    const after2038 = Date.parse("2040-01-01T00:00:00Z");
    const before1901 = Date.parse("1800-01-01T00:00:00Z");
    expect(await bodies({ end: after2038 })).toEqual({ total: 2, bodies: ["2026", "last second"] });
    expect(await bodies({ end: Date.parse("9999-12-31T23:59:59Z") })).toEqual({ total: 2, bodies: ["2026", "last second"] });
    expect(await bodies({ start: after2038 })).toEqual({ total: 0, bodies: [] });
    expect(await bodies({ start: T0, end: after2038 })).toEqual({ total: 2, bodies: ["2026", "last second"] });
    // inside the last second and just past it: the item at 03:14:07 is not after 03:14:07.5
    expect(await bodies({ start: LAST })).toEqual({ total: 1, bodies: ["last second"] });
    expect(await bodies({ start: LAST + 500 })).toEqual({ total: 0, bodies: [] });
    expect(await bodies({ start: LAST + 1000 })).toEqual({ total: 0, bodies: [] });
    expect(await bodies({ end: LAST + 999 })).toEqual({ total: 2, bodies: ["2026", "last second"] });
    // and the other end of int4
    expect(await bodies({ start: before1901 })).toEqual({ total: 2, bodies: ["2026", "last second"] });
    expect(await bodies({ end: before1901 })).toEqual({ total: 0, bodies: [] });
    expect(await bodies({ start: before1901, end: after2038, reverse: true, limit: 1 })).toEqual({ total: 2, bodies: ["last second"] });
    // deleting by the same bounds (retention, MAM's "delete before")
    expect(await a.delete("alice", { start: after2038 })).toBe(0);
    expect(await a.delete("alice", { end: before1901 })).toBe(0);
    expect(await a.delete("alice", { end: after2038 })).toBe(2);
    expect((await a.find("alice")).items).toEqual([]);
  });

  it("a MAM query with end (or start) after 2038-01-19T03:14:07Z is answered, not failed", async () => {
    t = createTestServer({ storage: await freshDriver(), config: { modules_enabled: ["disco", "mam"] } });
    const alice = t.connect("alice@localhost/phone");
    for (let i = 1; i <= 3; i++) {
      await t.clock.set(T0 + i * 60_000);
      await alice.send(chat("bob@localhost", `m${i}`));
    }
    await t.settle();
    const all = await runQuery(alice, { fields: { end: "2040-01-01T00:00:00Z" } });
    expect(all.iq.attrs.type).toBe("result");
    expect(all.bodies).toEqual(["m1", "m2", "m3"]);
    expect(all.complete).toBe(true);
    const between = await runQuery(alice, { fields: { start: "2026-01-01T00:02:00Z", end: "2106-02-07T06:28:16Z" }, max: 10 });
    expect(between.iq.attrs.type).toBe("result");
    expect(between.bodies).toEqual(["m2", "m3"]);
    expect(between.count).toBe(2);
    const none = await runQuery(alice, { fields: { start: "2038-01-19T03:14:08Z" }, max: 10 });
    expect(none.iq.attrs.type).toBe("result");
    expect(none.bodies).toEqual([]);
    expect(none.complete).toBe(true);
    expect(none.count).toBe(0);
    const old = await runQuery(alice, { fields: { start: "1800-01-01T00:00:00Z", end: "1900-01-01T00:00:00Z" } });
    expect(old.iq.attrs.type).toBe("result");
    expect(old.bodies).toEqual([]);
  });
});
