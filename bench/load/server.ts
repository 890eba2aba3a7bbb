// The load benchmark's server: `mamkit serve` as a child process on a SQLite file.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { DOMAIN, type LoadOptions, pool, root, sleep } from "./common.js";

// ---- the server process -------------------------------------------------------------------

export function cliCommand(opts: LoadOptions, nodeArgs: string[] = []): string[] {
  return opts.server === "src"
    ? [process.execPath, ...nodeArgs, "--import", "tsx", join(root, "src/cli/bin.ts")]
    : [process.execPath, ...nodeArgs, join(root, "bin/mamkit.js")];
}

/** The newest .ts file under src/ is newer than the build bin/mamkit.js runs. */
export function distIsStale(): boolean {
  const built = join(root, "dist/cli/main.js");
  if (!existsSync(built)) return true;
  const builtAt = statSync(built).mtimeMs;
  const walk = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith(".ts") && statSync(join(dir, e.name)).mtimeMs > builtAt,
    );
  return walk(join(root, "src"));
}

// (one helper for ports, shared with the tests)
export { freePort } from "../../test/helpers/net.js";

export function serverConfig(database: string, port: number, modules: string[], opts: LoadOptions): Record<string, unknown> {
  return {
    log: { level: "warn" },
    storage: { driver: "sqlite", database, synchronous: opts.synchronous },
    interfaces: ["127.0.0.1"],
    c2s_ports: [port],
    websocket_ports: [],
    c2s_require_encryption: false,
    modules_enabled: modules,
    // as config.example.json: no message younger than a day is removed, so a
    // cleanup that happened to be scheduled during the run cannot change the counts
    ...(modules.includes("mam_smart_retention") ? { smart_retention_min: "1d" } : {}),
    hosts: { [DOMAIN]: {} },
  };
}

export const password = (user: number) => `load-password-${user}`;

/**
 * `mamkit adduser` per user, the password on standard input, four processes at
 * a time on the new database (they also exercise concurrent schema creation).
 */
export async function createAccounts(configFile: string, users: number, opts: LoadOptions): Promise<void> {
  const [cmd, ...args] = cliCommand(opts);
  const add = (u: number) =>
    new Promise<void>((resolve, reject) => {
      const p = spawn(cmd!, [...args, "adduser", `user${u}@${DOMAIN}`, "--config", configFile], { cwd: root });
      let out = "";
      const collect = (d: Buffer) => {
        out += d.toString();
      };
      p.stdout.on("data", collect);
      p.stderr.on("data", collect);
      p.stdin.end(`${password(u)}\n`);
      p.on("error", reject);
      p.on("exit", (code) => {
        if (code === 0 && out.includes(`created user${u}@${DOMAIN}`)) resolve();
        else reject(new Error(`mamkit adduser user${u}@${DOMAIN} exited with ${code}: ${out.trim()}`));
      });
    });
  await pool(Array.from({ length: users }, (_, i) => i), 4, add);
}

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  /** Every line the server wrote (at log level warn: warnings and errors only). */
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export const running = new Set<ChildProcess>();
export const tempDirs = new Set<string>();
// an interrupted run (Ctrl-C, process.exit) leaves no server and no temporary folder behind
process.on("exit", () => {
  for (const c of running) c.kill("SIGKILL");
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

export async function startServer(configFile: string, port: number, opts: LoadOptions): Promise<ServerProcess> {
  // LOAD_SERVER_NODE_ARGS: extra node flags for the server only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  const nodeArgs = (process.env.LOAD_SERVER_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
  const [cmd, ...args] = cliCommand(opts, nodeArgs);
  const child = spawn(cmd!, [...args, "serve", "--config", configFile], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  const lines: string[] = [];
  let partial = "";
  const onData = (d: Buffer) => {
    const parts = (partial + d.toString()).split("\n");
    partial = parts.pop()!;
    for (const l of parts) if (l.trim() !== "") lines.push(l);
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      done = true;
      running.delete(child);
      if (partial.trim() !== "") lines.push(partial);
      resolve({ code, signal });
    }),
  );
  // at log level warn the server prints no "listening" line: wait until the port accepts
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (done) throw new Error(`the server exited before listening:\n${lines.join("\n")}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`the server did not listen on 127.0.0.1:${port} within 30 s:\n${lines.join("\n")}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) break;
    await sleep(50);
  }
  return { child, pid: child.pid!, lines, exited };
}

/** CPU seconds and memory of a process, from /proc (Linux); undefined elsewhere. */
export function procStats(pid: number): { cpuMs: number; rssKb: number; peakKb: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(f[11]) + Number(f[12]); // utime + stime (fields 14 and 15), in 1/100 s
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? Number.NaN);
    return { cpuMs: ticks * 10, rssKb: kb("VmRSS"), peakKb: kb("VmHWM") };
  } catch {
    return undefined;
  }
}
