// A write whose statement fails on the server (a full disk: SQLSTATE 53100; a
// read-only database after a failover: 25006) is lost as surely as a failed
// commit: marks taken before it learn of it, and the stanza is never acknowledged.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PostgresDriver } from "../../../src/storage/postgres/driver.js";
import { createTestServer, type FakeClient, type TestServer } from "../../../src/testing/index.js";
import { xml } from "../../../src/xmpp/stanza.js";
import { type PgCluster, pgAvailable, startPg } from "../../helpers/pg.js";

const NS = "urn:xmpp:sm:3";
const message = (to: string, body: string) => xml("message", { to, type: "chat", id: body }, xml("body", {}, body));
const lastAck = (c: FakeClient) => Number(c.nonzas.filter((n) => n.name === "a").at(-1)?.attrs.h ?? 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!pgAvailable)("statement failures on PostgreSQL", () => {
  let cluster: PgCluster;
  let t: TestServer | undefined;
  beforeAll(async () => { cluster = await startPg(); }, 60_000);
  afterAll(() => cluster?.stop());
  afterEach(async () => { await t?.stop(); t = undefined; });

  it("a message whose archive row cannot be written (disk full) is never acknowledged", async () => {
    const url = await cluster.createDatabase();
    const storage = new PostgresDriver({ url });
    await storage.ready();
    t = createTestServer({ config: { modules_enabled: ["smacks", "mam", "roster"] }, storage });
    const alice = t.connect("alice@localhost/phone", { streamManagement: true });
    const bob = t.connect("bob@localhost/pc", { streamManagement: true });
    await t.settle();
    await alice.requestAck();
    const before = lastAck(alice);
    // the disk fills up: every INSERT into the archive fails as PostgreSQL says it then
    await cluster.psql(
      `CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device' USING ERRCODE = '53100'; END $$;
       CREATE TRIGGER full_disk BEFORE INSERT ON prosodyarchive FOR EACH ROW EXECUTE FUNCTION full_disk();`,
      url,
    );
    alice.session.receive(message("bob@localhost", "lost"));
    alice.session.receive(xml("r", { xmlns: NS }));
    await sleep(1000);
    const other = new PostgresDriver({ url });
    const stored = (await other.archive("localhost", "archive").find("alice")).items.length + (await other.archive("localhost", "archive").find("bob")).items.length;
    const bobGot = bob.received.filter((s) => s.name === "message" && s.getChildText("body") === "lost").length;
    await other.close();
    expect(stored).toBe(0);
    expect(bobGot).toBe(0);
    expect(lastAck(alice)).toBe(before); // acknowledged? then the message is lost
  });
});
