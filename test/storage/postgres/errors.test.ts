// What the postgres driver says when it cannot serve: an unreachable server,
// a refused password, a database that is not there — each naming the setting,
// at start (Server.create, the CLI) rather than at the first message.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, HostError, PostgresDriver, Server } from "mamkit";
import { freePort } from "../../helpers/net.js";
import { type PgCluster, pgAvailable, startPg } from "../../helpers/pg.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));

async function createWith(storage: Record<string, unknown>): Promise<unknown> {
  return Server.create({ config: { storage, hosts: { localhost: {} } }, logger: createLogger({ level: "silent" }), timers: false }).then(
    async (s) => {
      await s.stop();
      return undefined;
    },
    (err: unknown) => err,
  );
}

describe.skipIf(!pgAvailable)("postgres driver errors", () => {
  let cluster: PgCluster;
  let url: string;
  beforeAll(async () => {
    cluster = await startPg();
    url = await cluster.createDatabase();
  }, 60_000);
  afterAll(() => cluster?.stop());

  it("an unreachable server, a wrong password, a missing database: MAMKIT_ERR_STORAGE_OPEN naming storage.url", async () => {
    const port = await freePort();
    const unreachable = await createWith({ driver: "postgres", url: `postgres://x@127.0.0.1:${port}/db` });
    expect(unreachable).toBeInstanceOf(HostError);
    expect((unreachable as HostError).code).toBe("MAMKIT_ERR_STORAGE_OPEN");
    expect((unreachable as Error).message).toBe(
      `cannot connect to PostgreSQL at 127.0.0.1:${port} (storage.url): nothing accepts connections there; is the server running?`,
    );
    const refused = (await createWith({ driver: "postgres", url: cluster.withRole(url, "wrong") })) as Error;
    expect(refused.message).toMatch(/^PostgreSQL at 127\.0\.0\.1:\d+ refused user "mamkit" \(storage\.url\): password authentication failed/);
    const missing = (await createWith({ driver: "postgres", url: url.replace(/\/[^/]+$/, "/nosuchdb") })) as Error;
    expect(missing.message).toMatch(/has no database "nosuchdb" \(storage\.url\): create it first \(createdb nosuchdb\)/);
  });

  it("Prosody's sql table is named in its errors", async () => {
    const port = await freePort();
    const err = (await Server.create({
      config: { storage: "sql", sql: { driver: "PostgreSQL", host: "127.0.0.1", port, database: "prosody", username: "p", password: "x" }, hosts: {} },
      logger: createLogger({ level: "silent" }),
    }).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain("(sql)");
  });

  it("the right password works, and a write fails clearly once the server is gone for longer than the retry window", async () => {
    const good = new PostgresDriver({ url: cluster.withRole(url) });
    await good.ready();
    await good.keyval("h", "s").set("u", { a: 1 });
    expect(await good.keyval("h", "s").get("u")).toEqual({ a: 1 });
    await good.close();
    const port = await freePort();
    const gone = new PostgresDriver({ url: `postgres://x@127.0.0.1:${port}/db`, retryMs: 300 });
    await expect(gone.keyval("h", "s").set("u", { a: 1 })).rejects.toThrow(/cannot connect to PostgreSQL .*\(storage\.url\)/);
    await gone.close();
  });

  it("refuses an archive sequence that caches values per connection (positions out of commit order)", async () => {
    const db = await cluster.createDatabase();
    const first = new PostgresDriver({ url: db });
    await first.ready();
    await first.close();
    await cluster.psql('ALTER SEQUENCE "prosodyarchive_sort_id_seq" CACHE 20', db);
    const d = new PostgresDriver({ url: db });
    await expect(d.ready()).rejects.toThrow(/has CACHE 20 \(storage\.url\): positions would not follow the order of commits; run ALTER SEQUENCE .* CACHE 1/);
    await d.close();
  });

  it("mamkit serve exits at once with the reason", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mamkit-pg-serve-"));
    try {
      const file = join(dir, "config.json");
      writeFileSync(file, JSON.stringify({ storage: { driver: "postgres", url: cluster.withRole(url, "wrong") }, c2s_ports: [await freePort()], websocket_ports: [], hosts: { localhost: {} } }));
      const r = await new Promise<{ code: number; out: string }>((resolve) =>
        execFile(process.execPath, ["--import", "tsx", join(root, "src/cli/bin.ts"), "serve", "-c", file], { cwd: root, timeout: 30_000 }, (e, stdout, stderr) =>
          resolve({ code: (e as { code?: number } | null)?.code ?? 0, out: stdout + stderr }),
        ),
      );
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(/mamkit serve: PostgreSQL at 127\.0\.0\.1:\d+ refused user "mamkit" \(storage\.url\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);
});
