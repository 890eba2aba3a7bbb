// Several `mamkit serve` processes on one PostgreSQL database, for the
// multi-node tests: each node is a child process of its own, on a private
// port, started and stopped (or killed) by the test.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLogger, PostgresDriver, Server } from "mamkit";
import { freePort, waitForPort } from "../helpers/net.js";

const root = fileURLToPath(new URL("../..", import.meta.url));

export const NODE_MODULES = ["saslauth", "sasl2", "bind2", "roster", "presence", "disco", "smacks", "carbons", "mam"];

export interface Node {
  name: string;
  port: number;
  child: ChildProcess;
  /** What it logged so far (stdout and stderr). */
  output(): string;
  /** SIGTERM, and resolves once it exited. */
  stop(): Promise<void>;
  kill(): Promise<void>;
}

const started: Node[] = [];
const dirs: string[] = [];

/** The config every node of a test shares (its own port added per node). */
export function nodeConfig(url: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    log: { level: "info", format: "json" },
    storage: { driver: "postgres", url, pool: 4 },
    interfaces: ["127.0.0.1"],
    websocket_ports: [],
    c2s_require_encryption: false,
    allow_unencrypted_plain_auth: true,
    modules_enabled: NODE_MODULES,
    hosts: { localhost: {} },
    ...extra,
  };
}

/** Creates accounts (password: USER-password) through an embedded server on the database. */
export async function createAccounts(url: string, users: readonly string[]): Promise<void> {
  const storage = new PostgresDriver({ url });
  const s = await Server.create({ config: { storage: "memory", hosts: { localhost: {} } }, storage, logger: createLogger({ level: "silent" }), timers: false });
  for (const u of users) if (!(await s.accounts("localhost").exists(u))) await s.accounts("localhost").create(u, `${u}-password`);
  await s.stop();
}

export async function startNode(name: string, config: Record<string, unknown>): Promise<Node> {
  const dir = mkdtempSync(join(tmpdir(), `mamkit-node-${name}-`));
  dirs.push(dir);
  const port = await freePort();
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify({ ...config, c2s_ports: [port] }));
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli/bin.ts"), "serve", "--config", file], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const node: Node = {
    name,
    port,
    child,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
  started.push(node);
  try {
    await waitForPort(port, 20_000);
  } catch (err) {
    await node.kill();
    throw new Error(`node ${name} did not start: ${(err as Error).message}\n${out.slice(-2000)}`);
  }
  return node;
}

/** Stops every node a test started (killed if it does not stop), and removes their folders. */
export async function stopNodes(): Promise<void> {
  await Promise.all(
    started.splice(0).map(async (n) => {
      const t = setTimeout(() => n.child.kill("SIGKILL"), 10_000);
      await n.stop();
      clearTimeout(t);
    }),
  );
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true (or throws when `ms` passed). */
export async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
