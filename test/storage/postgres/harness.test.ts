// The private PostgreSQL cluster of test/helpers/pg.ts: it starts, makes separate databases,
// keeps a committed row across a fast and an immediate (crash-like) restart on the same port,
// refuses a wrong password, and leaves nothing behind when stopped. Skipped (reported as such)
// where no PostgreSQL server is installed.
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { portOpen } from "../../helpers/net.js";
import { findPostgres, type PgCluster, pgAvailable, startPg } from "../../helpers/pg.js";

describe.skipIf(!pgAvailable)("a private PostgreSQL cluster for tests", () => {
  let pg: PgCluster;
  const dbs: string[] = [];

  beforeAll(async () => {
    pg = await startPg();
  }, 60_000);

  afterAll(async () => {
    await pg?.stop();
  });

  it("finds the server's programs and listens on its own port of 127.0.0.1", async () => {
    expect(findPostgres()?.bin).toMatch(/bin$/);
    expect(pg.url).toBe(`postgres://postgres@127.0.0.1:${pg.port}/postgres`);
    expect(await portOpen(pg.port)).toBe(true);
    expect(await pg.psql("SHOW listen_addresses")).toBe("127.0.0.1");
    expect(await pg.psql("SHOW unix_socket_directories")).toBe(pg.socketDir);
    expect(await pg.psql("SHOW server_encoding")).toBe("UTF8");
  });

  it("makes fresh empty databases, each its own", async () => {
    dbs.push(await pg.createDatabase(), await pg.createDatabase("second_db"));
    expect(dbs[1]).toBe(`postgres://postgres@127.0.0.1:${pg.port}/second_db`);
    expect(new Set(dbs).size).toBe(2);
    for (const url of dbs) expect(await pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", url)).toBe("0");
    await pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'before')", dbs[0]);
    expect(await pg.psql("SELECT to_regclass('public.t') IS NULL", dbs[1])).toBe("t");
  });

  it("keeps a committed row across a fast restart, on the same port", async () => {
    const port = pg.port;
    await pg.restart("fast");
    expect(pg.port).toBe(port);
    expect(await pg.psql("SELECT v FROM t WHERE id = 1", dbs[0])).toBe("before");
  });

  it("keeps committed rows across an immediate restart (recovery from the WAL)", async () => {
    await pg.psql("INSERT INTO t VALUES (2, 'just before the crash')", dbs[0]);
    await pg.restart("immediate");
    expect(await pg.psql("SELECT string_agg(v, '|' ORDER BY id) FROM t", dbs[0])).toBe("before|just before the crash");
  });

  it("lets the password role in with its password, and no one with a wrong one", async () => {
    const right = pg.withRole(dbs[0]!);
    expect(right).toBe(`postgres://mamkit:secret@127.0.0.1:${pg.port}/${dbs[0]!.split("/").pop()}`);
    expect(await pg.psql("SELECT current_user", right)).toBe("mamkit");
    // the role owns the database, so it may create tables there
    await pg.psql("CREATE TABLE mine (x int)", right);
    await expect(pg.psql("SELECT 1", pg.withRole(dbs[0]!, "wrong"))).rejects.toThrow(/password authentication failed for user "mamkit"/);
  });

  it("a refused psql with more input than a pipe holds rejects with its reason (no uncaught EPIPE)", async () => {
    const big = "SELECT 1;\n".repeat(200_000);
    await expect(pg.psql(big, pg.withRole(dbs[0]!, "wrong"))).rejects.toThrow(/password authentication failed for user "mamkit"/);
  });

  it("reports a failing statement with PostgreSQL's message", async () => {
    await expect(pg.psql("SELECT * FROM no_such_table")).rejects.toThrow(/relation "no_such_table" does not exist/);
  });

  it("stops: the port closes and the folders are gone; stopping again is a no-op", async () => {
    await pg.stop();
    expect(await portOpen(pg.port)).toBe(false);
    expect(existsSync(pg.dataDir)).toBe(false);
    expect(existsSync(pg.socketDir)).toBe(false);
    await expect(pg.stop()).resolves.toBeUndefined();
  });
});
