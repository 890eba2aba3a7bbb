// The two servers of `npm run bench:compare`: a private Prosody 0.12 (its own
// config in a temporary folder, mod_mam on SQLite, Nagle off) and mamkit
// (`mamkit serve` on a copy of the same database file), with the same modules,
// accounts and 100,000-message archive. One runs at a time.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { copyFileSync, createWriteStream, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { portOpen } from "../../test/helpers/net.js";
import { freePort } from "../load/server.js";
import { createLogger } from "../../src/core/logger.js";
import { Server } from "../../src/server.js";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import { xml } from "../../src/xmpp/stanza.js";

export const root = fileURLToPath(new URL("../..", import.meta.url));
export const DOMAIN = "localhost";
/** Prosody's names; mamkit adds presence, which Prosody has built in. */
export const MODULES = ["roster", "saslauth", "disco", "ping", "carbons", "mam"];
export const MAM_USER = "archive";
export const CONTACTS = 10;
export const password = (user: string) => `${user}-bench`;

export function prosodyAvailable(): string | undefined {
  try {
    const about = execFileSync("prosodyctl", ["about"], { encoding: "utf8", timeout: 15_000, stdio: ["ignore", "pipe", "ignore"] });
    if (!/LuaDBI/.test(about)) return "Prosody is installed but LuaDBI is not (Debian: apt install lua-dbi-sqlite3)";
    return undefined;
  } catch {
    return "Prosody is not installed (Debian: apt install prosody lua-dbi-sqlite3)";
  }
}


/**
 * The database both servers start from: accounts (mamkit writes them as
 * Prosody's internal_hashed does) and the archive of MAM_USER, `archived`
 * messages with CONTACTS contacts over the last 30 days.
 */
export async function seedDatabase(file: string, users: string[], archived: number): Promise<{ ids: string[]; first: number; last: number }> {
  const config = { log: { level: "silent" }, storage: { driver: "sqlite", database: file }, modules_enabled: [], hosts: { [DOMAIN]: {} } };
  const server = new Server({ config, logger: createLogger({ level: "silent" }), timers: false });
  const accounts = server.accounts(DOMAIN);
  for (const u of [...users, MAM_USER]) await accounts.create(u, password(u));
  await server.stop();
  const d = new SqliteDriver(file, { commit: { commitMaxWrites: 5000 } });
  const archive = d.archive(DOMAIN, "archive");
  const ids: string[] = [];
  const last = Date.now() - 60_000;
  const first = last - 30 * 86_400_000;
  const step = (last - first) / archived;
  for (let i = 0; i < archived; i++) {
    const peer = `contact${i % CONTACTS}@${DOMAIN}`;
    const outgoing = i % 2 === 0;
    const stanza = xml(
      "message",
      { xmlns: "jabber:client", type: "chat", id: `seed${i}`, from: outgoing ? `${MAM_USER}@${DOMAIN}/x` : `${peer}/x`, to: outgoing ? peer : `${MAM_USER}@${DOMAIN}` },
      xml("body", {}, `archived message ${i} with some text in it to make it a typical chat message of about 100 bytes`),
    );
    ids.push((await archive.append(MAM_USER, { stanza, when: first + i * step, with: peer })).id);
    if (i % 5000 === 4999) await d.durable();
  }
  await d.durable();
  await d.close();
  return { ids, first, last };
}

export interface Running {
  name: string;
  /** Its own folder (config, logs). */
  dir: string;
  child: ChildProcess;
  port: number;
  /** For mamkit: where its event-loop probe writes. */
  loopFile?: string;
  stop(): Promise<void>;
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

async function waitListening(child: ChildProcess, port: number, name: string, out: () => string): Promise<void> {
  const start = Date.now();
  while (!(await portOpen(port))) {
    if (child.exitCode !== null || Date.now() - start > 30_000) {
      child.kill("SIGKILL");
      throw new Error(`${name} did not start:\n${out().slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startProsody(dir: string, database: string): Promise<Running> {
  mkdirSync(join(dir, "data"), { recursive: true });
  mkdirSync(join(dir, "certs"), { recursive: true });
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  const lua = [
    asRoot ? 'prosody_user = "root"\nprosody_group = "root"\nrun_as_root = true' : "",
    "daemonize = false",
    `pidfile = "${dir}/prosody.pid"`,
    `data_path = "${dir}/data"`,
    `certificates = "${dir}/certs"`,
    'interfaces = { "127.0.0.1" }',
    `c2s_ports = { ${port} }`,
    "s2s_ports = { }",
    "c2s_require_encryption = false",
    "allow_unencrypted_plain_auth = true",
    'authentication = "internal_hashed"',
    'storage = "sql"',
    `sql = { driver = "SQLite3", database = "${database}" }`,
    'archive_expires_after = "never"',
    // Nagle would hold back the last segment of a MAM page for ~40 ms
    "network_settings = { nagle = false }",
    `log = { { levels = { min = "warn" }, to = "file", filename = "${dir}/prosody.log" } }`,
    `modules_enabled = { ${MODULES.map((m) => `"${m}"`).join(", ")} }`,
    'modules_disabled = { "s2s" }',
    `VirtualHost "${DOMAIN}"`,
  ].join("\n");
  const config = join(dir, "prosody.cfg.lua");
  writeFileSync(config, `${lua}\n`);
  const child = spawn("prosody", ["--config", config], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const log = () => {
    try {
      return readFileSync(join(dir, "prosody.log"), "utf8");
    } catch {
      return "";
    }
  };
  await waitListening(child, port, "prosody", () => out + log());
  return { name: "Prosody", dir, child, port, stop: () => stopChild(child) };
}

export async function startMamkit(
  dir: string,
  database: string,
  synchronous: "full" | "normal",
  nodeArgs: string[] = [],
  commit: { commit_delay_ms?: number; commit_max_writes?: number } = {},
): Promise<Running> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const config = {
    log: { level: "warn" },
    storage: { driver: "sqlite", database, synchronous, ...commit },
    interfaces: ["127.0.0.1"],
    c2s_ports: [port],
    websocket_ports: [],
    c2s_require_encryption: false,
    allow_unencrypted_plain_auth: true,
    archive_expires_after: "never",
    modules_enabled: [...MODULES, "presence"],
    hosts: { [DOMAIN]: {} },
  };
  const file = join(dir, "mamkit.json");
  writeFileSync(file, JSON.stringify(config));
  const loopFile = join(dir, "loop.json");
  // the build (bin/mamkit.js, after `npm run build`) where asked: its profiles keep function names
  const entry = process.env.MAMKIT_COMPARE_DIST ? [join(root, "bin/mamkit.js")] : [join(root, "src/cli/bin.ts")];
  const args = [...nodeArgs, "--import", "tsx", "--import", join(root, "bench/compare/loop-probe.ts"), ...entry, "serve", "--config", file];
  const extra = process.env.MAMKIT_COMPARE_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...extra, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, MAMKIT_LOOP_PROBE: loopFile } });
  if (process.env.MAMKIT_COMPARE_STDOUT) child.stdout!.pipe(createWriteStream(process.env.MAMKIT_COMPARE_STDOUT));
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  await waitListening(child, port, "mamkit", () => out);
  return { name: "mamkit", dir, child, port, loopFile, stop: () => stopChild(child) };
}

export function copyDatabase(from: string, to: string): void {
  copyFileSync(from, to);
}

/** CPU time (ms, user + system) and peak resident memory (MiB) of a process, from /proc. */
export function processStats(pid: number): { cpuMs: number; peakRssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  return { cpuMs: (ticks * 1000) / 100, peakRssMiB: hwm ? Number(hwm[1]) / 1024 : Number.NaN };
}
