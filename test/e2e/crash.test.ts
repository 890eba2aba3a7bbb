// SIGKILL under load: `mamkit serve` runs as its own process on a SQLite file;
// senders in this process push messages over raw sockets with stream
// management and note the highest h the server acknowledged. After the kill,
// every message the server had acknowledged is in the sender's and the
// recipient's archive exactly once — with group commit, for both `synchronous`
// settings (a killed process loses no commit with either; "normal" can lose the
// last commits only to a power cut or an OS crash, which this cannot test).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger, Server } from "mamkit";
import { freePort, waitForPort } from "../helpers/net.js";
import { ackedOf, pump, smLogin } from "./load.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const SENDERS = 4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));let child: ChildProcess | undefined;
const dirs: string[] = [];
afterEach(() => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  child = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});



async function crashRun(synchronous: "full" | "normal"): Promise<{ acked: number[]; problems: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), "mamkit-crash-"));
  dirs.push(dir);
  const database = join(dir, "db.sqlite");
  const port = await freePort();
  const config = {
    log: { level: "warn" },
    storage: { driver: "sqlite", database, synchronous },
    interfaces: ["127.0.0.1"],
    c2s_ports: [port],
    websocket_ports: [],
    c2s_require_encryption: false,
    allow_unencrypted_plain_auth: true,
    modules_enabled: ["saslauth", "roster", "smacks", "mam"],
    hosts: { localhost: {} },
  };
  const configFile = join(dir, "config.json");
  writeFileSync(configFile, JSON.stringify(config));
  // the accounts, written before the server process opens the file
  const setup = new Server({ config, logger: createLogger({ level: "silent" }), timers: false });
  const accounts = setup.accounts("localhost");
  for (const u of ["sink", ...Array.from({ length: SENDERS }, (_, i) => `s${i}`)]) await accounts.create(u, `${u}-password`);
  await setup.stop();

  child = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli/bin.ts"), "serve", "--config", configFile], {
    cwd: root,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  await waitForPort(port);
  const clients = await Promise.all(Array.from({ length: SENDERS }, (_, i) => smLogin(port, `s${i}`)));
  const pumps = clients.map((c, i) => pump(c, `s${i}`, 100));
  // under load for a while, then killed in the middle of it
  await sleep(1500);
  const exited = new Promise((r) => child!.once("exit", r));
  child.kill("SIGKILL");
  await exited;
  for (const p of pumps) p.stop();
  const acked = clients.map(ackedOf);
  for (const c of clients) c.end();

  const db = new Database(database);
  const problems: string[] = [];
  const ids = (user: string) => {
    const rows = db.prepare('SELECT "value" FROM "prosodyarchive" WHERE "host"=\'localhost\' AND "user"=?').all(user) as { value: string }[];
    const count = new Map<string, number>();
    for (const r of rows) {
      const id = / id=(?:'([^']+)'|"([^"]+)")/.exec(r.value)?.slice(1).find((x) => x !== undefined) ?? "?";
      count.set(id, (count.get(id) ?? 0) + 1);
    }
    return count;
  };
  const sink = ids("sink");
  for (let i = 0; i < SENDERS; i++) {
    const own = ids(`s${i}`);
    for (let k = 1; k <= acked[i]!; k++) {
      const id = `s${i}-${k}`;
      if (own.get(id) !== 1) problems.push(`${id} acknowledged, ${own.get(id) ?? 0} times in the sender's archive`);
      if (sink.get(id) !== 1) problems.push(`${id} acknowledged, ${sink.get(id) ?? 0} times in the recipient's archive`);
    }
    for (const [id, n] of own) if (n > 1) problems.push(`${id} ${n} times in the sender's archive`);
  }
  db.close();
  if (problems.length > 0) problems.push(`server stderr: ${stderr.slice(-500)}`);
  return { acked, problems };
}

describe("SIGKILL under load: nothing acknowledged is lost, nothing is stored twice", () => {
  for (const synchronous of ["full", "normal"] as const) {
    it(`synchronous: "${synchronous}"`, async () => {
      const { acked, problems } = await crashRun(synchronous);
      expect(problems.slice(0, 10)).toEqual([]);
      // the run did put the server under load: hundreds of acknowledged messages
      expect(acked.reduce((a, b) => a + b, 0)).toBeGreaterThan(200);
    }, 60_000);
  }
});
