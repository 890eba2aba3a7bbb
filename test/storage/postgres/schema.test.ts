// mamkit's PostgreSQL DDL (src/storage/postgres/schema.ts) against what Prosody 0.12.3 itself
// creates (test/fixtures/prosody-postgres-schema.sql, a pg_dump of it): a database made by
// mamkit's driver dumps to the same schema, table by table, column by column, index by index.
// Skipped (reported as such) where no PostgreSQL server is installed.
import { readFileSync } from "node:fs";
import { xml } from "@xmpp/xml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresDriver } from "mamkit";
import { normaliseDump, PROSODY_SCHEMA_FIXTURE, prosodySchemaFixture, schemaDump } from "../../helpers/pg-dump.js";
import { type PgCluster, pgAvailable, startPg } from "../../helpers/pg.js";

const dbName = (url: string) => new URL(url).pathname.slice(1);

describe.skipIf(!pgAvailable)("mamkit's PostgreSQL schema is the one Prosody 0.12.3 creates", () => {
  let cluster: PgCluster;
  beforeAll(async () => {
    cluster = await startPg({ fsync: false });
  }, 60_000);
  afterAll(() => cluster?.stop());

  it("the normalised fixture is pg_dump's DDL only: two tables, the sequence, the key and five indexes", () => {
    const fixture = prosodySchemaFixture();
    expect(fixture.startsWith("--\n-- Name: prosody; Type: TABLE; Schema: public; Owner: -\n--")).toBe(true);
    expect(fixture).not.toMatch(/^SET |\\restrict|Dumped (from|by)/m);
    expect(fixture.match(/^CREATE (UNIQUE )?INDEX /gm)).toHaveLength(5);
    expect(fixture.match(/^CREATE TABLE /gm)).toHaveLength(2);
  });

  it("a database made by mamkit's driver dumps (pg_dump --schema-only) to exactly the fixture", async () => {
    const url = await cluster.createDatabase("made_by_mamkit");
    const driver = new PostgresDriver({ url: cluster.withRole(url) });
    await driver.ready();
    await driver.close();
    const dump = await schemaDump(cluster, dbName(url));
    // the raw dump had what normalising drops
    expect(dump).toMatch(/^SET statement_timeout = 0;$/m);
    expect(normaliseDump(dump)).toBe(prosodySchemaFixture());
  });

  it("the fixture loaded into an empty database dumps back to itself, and mamkit opens it without changing it", async () => {
    const url = await cluster.createDatabase("loaded_fixture");
    await cluster.psql(readFileSync(PROSODY_SCHEMA_FIXTURE, "utf8"), dbName(url));
    await cluster.psql(`ALTER TABLE prosody OWNER TO mamkit; ALTER TABLE prosodyarchive OWNER TO mamkit`, dbName(url));
    const before = normaliseDump(await schemaDump(cluster, dbName(url)));
    expect(before).toBe(prosodySchemaFixture());
    const driver = new PostgresDriver({ url: cluster.withRole(url), createSchema: false });
    await driver.ready();
    const ref = await driver.archive("localhost", "archive").append("alice", {
      when: Date.parse("2026-01-01T00:00:00Z"),
      with: "bob@localhost",
      stanza: xml("message", { type: "chat" }, xml("body", {}, "hi")),
    });
    expect(ref.pos).toBe(1);
    await driver.close();
    expect(normaliseDump(await schemaDump(cluster, dbName(url)))).toBe(before);
  });
});
