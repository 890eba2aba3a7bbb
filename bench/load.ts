// Load over real sockets: the real server (`node bin/mamkit.js serve`) runs as
// a child process on a SQLite file; this process is the load generator. It
// logs N clients in with @xmpp/client 0.14 (STARTTLS, SASL2 SCRAM-SHA-1 with a
// user-agent id, Bind 2 with stream management inline), has each send chat
// messages to other users' bare JIDs with a bounded window of messages not yet
// received, and checks that every message arrived exactly once, at the right
// user, in order per sender and recipient, and that every archive holds
// exactly what its user sent and received (counts over the wire for every
// user, whole archives paged through for a few). A few extra connections query
// MAM pages of 50 during the load. Two runs: mam, then mam + mam_smart_retention.
// Prints numbers; exits 1 (after printing everything) if anything was lost,
// duplicated or misrouted, a client saw an error, the server logged a warning
// or did not exit with 0 soon after SIGTERM.
//
// @xmpp/client rather than a raw-socket client: its overhead does not dominate
// (the generator uses 10-40 % of a core while the server is the bottleneck),
// and it is an independent, real client. Its one slow part, the SCRAM key
// derivation, is replaced at run time (see speedUpScram).
//
//   npx tsx bench/load.ts [--clients 40] [--messages 500 | --duration SECONDS]
//     [--window 2] [--mam-clients 4] [--verify-users 4] [--sync full|normal]
//     [--runs mam,smart] [--server dist|src] [--settle MS] [--keep]
// or as environment variables: LOAD_CLIENTS, LOAD_MESSAGES, LOAD_DURATION,
// LOAD_WINDOW, LOAD_MAM_CLIENTS, LOAD_VERIFY_USERS, LOAD_SYNC, LOAD_RUNS,
// LOAD_SERVER, LOAD_SETTLE_MS, LOAD_KEEP=1; LOAD_SERVER_NODE_ARGS adds node
// flags to the server process only (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
import { type ChildProcess, spawn } from "node:child_process";
import { pbkdf2Sync, randomUUID } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { type AddressInfo, connect, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Client, client } from "@xmpp/client";
import { type Element, xml } from "@xmpp/xml";

const root = fileURLToPath(new URL("..", import.meta.url));
const NS_MAM = "urn:xmpp:mam:2";
const NS_RSM = "http://jabber.org/protocol/rsm";
const NS_FORWARD = "urn:xmpp:forward:0";
const NS_SID = "urn:xmpp:sid:0";
const DOMAIN = "localhost";
const BASE_MODULES = ["saslauth", "sasl2", "bind2", "roster", "presence", "disco", "ping", "smacks", "carbons", "mam"];

export interface LoadOptions {
  /** Load connections, one user each (user0 …). */
  clients: number;
  /** Messages each client sends (ignored when `duration` is set). */
  messages: number;
  /** Seconds to send for instead of a fixed count (0: use `messages`). */
  duration: number;
  /** Messages a client may have sent that its peer did not receive yet. */
  window: number;
  /** Extra connections (second resources of user0 …) querying MAM pages of 50 during the load. */
  mamClients: number;
  /** Pause between one MAM client's queries, ms. */
  mamPauseMs: number;
  /** Users whose whole archive is paged through and compared message by message. */
  verifyUsers: number;
  synchronous: "full" | "normal";
  runs: ("mam" | "smart")[];
  /** After the last send: how long without a new delivery counts as "settled", ms. */
  settleMs: number;
  /** `dist`: node bin/mamkit.js (the build); `src`: node --import tsx src/cli/bin.ts. */
  server: "dist" | "src";
  /** Keep the temporary folder (configs, databases). */
  keep: boolean;
}

const DEFAULTS: LoadOptions = {
  clients: 40,
  messages: 500,
  duration: 0,
  window: 2,
  mamClients: 4,
  mamPauseMs: 20,
  verifyUsers: 4,
  synchronous: "full",
  runs: ["mam", "smart"],
  settleMs: 5000,
  server: "dist",
  keep: false,
};

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const now = () => performance.now();

function percentiles(values: number[]): (p: number) => string {
  const a = values.slice().sort((x, y) => x - y);
  return (p) => (a.length === 0 ? "-" : a[Math.min(a.length - 1, Math.floor((p / 100) * a.length))]!.toFixed(1));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]);
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

// @xmpp/client's SCRAM-SHA-1 (the sasl-scram-sha-1 package) derives the salted
// password with 10,000 awaited WebCrypto HMAC calls: ~0.65 s per login, and
// concurrent logins starve each other into @xmpp/client's 2 s timeouts. The
// same PBKDF2-HMAC-SHA-1 from node:crypto takes ~3 ms. Only the load
// generator's speed changes, not what goes over the wire.
function speedUpScram(): boolean {
  try {
    const fromXmpp = createRequire(createRequire(import.meta.url).resolve("@xmpp/sasl-scram-sha-1/package.json"));
    const bitops = fromXmpp("sasl-scram-sha-1/lib/bitops.js") as { Hi: (text: string, salt: Uint8Array, n: number) => Promise<Uint8Array> };
    bitops.Hi = async (text, salt, n) => new Uint8Array(pbkdf2Sync(text, salt, n, 20, "sha1"));
    return true;
  } catch {
    return false;
  }
}

// ---- the server process -------------------------------------------------------------------

function cliCommand(opts: LoadOptions, nodeArgs: string[] = []): string[] {
  return opts.server === "src"
    ? [process.execPath, ...nodeArgs, "--import", "tsx", join(root, "src/cli/bin.ts")]
    : [process.execPath, ...nodeArgs, join(root, "bin/mamkit.js")];
}

/** The newest .ts file under src/ is newer than the build bin/mamkit.js runs. */
function distIsStale(): boolean {
  const built = join(root, "dist/cli/main.js");
  if (!existsSync(built)) return true;
  const builtAt = statSync(built).mtimeMs;
  const walk = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith(".ts") && statSync(join(dir, e.name)).mtimeMs > builtAt,
    );
  return walk(join(root, "src"));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function serverConfig(database: string, port: number, modules: string[], opts: LoadOptions): Record<string, unknown> {
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

const password = (user: number) => `load-password-${user}`;

/**
 * `mamkit adduser` per user, the password on standard input, four processes at
 * a time on the new database (they also exercise concurrent schema creation).
 */
async function createAccounts(configFile: string, users: number, opts: LoadOptions): Promise<void> {
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

interface ServerProcess {
  child: ChildProcess;
  pid: number;
  /** Every line the server wrote (at log level warn: warnings and errors only). */
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();
const tempDirs = new Set<string>();
// an interrupted run (Ctrl-C, process.exit) leaves no server and no temporary folder behind
process.on("exit", () => {
  for (const c of running) c.kill("SIGKILL");
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

async function startServer(configFile: string, port: number, opts: LoadOptions): Promise<ServerProcess> {
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
function procStats(pid: number): { cpuMs: number; rssKb: number; peakKb: number } | undefined {
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

// ---- clients ------------------------------------------------------------------------------

interface Conn {
  c: Client;
  user: number;
  label: string;
  /** Errors while the server runs: every one is a finding. */
  errors: string[];
  /** Errors after the SIGTERM: the system-shutdown stream error, and writes to the closed socket. */
  afterStop: string[];
  stopping: boolean;
  disconnects: number;
  /** Stream headers received (2 after STARTTLS). */
  opens: number;
  /** @xmpp/client's post-STARTTLS open() timeouts (see the error handler). */
  openRaces: number;
}

const collectors = new Map<string, Element[]>();
let queryCounter = 0;

function openClient(port: number, user: number, resource: string): Conn {
  const c = client({
    service: `xmpp://127.0.0.1:${port}`,
    domain: DOMAIN,
    username: `user${user}`,
    password: password(user),
    resource,
    timeout: 5000,
    userAgent: xml("user-agent", { id: randomUUID() }, xml("software", {}, "mamkit load bench"), xml("device", {}, resource)),
  });
  c.reconnect.stop(); // a dropped connection is a finding, not something to paper over
  const conn: Conn = { c, user, label: `user${user}/${resource}`, errors: [], afterStop: [], stopping: false, disconnects: 0, opens: 0, openRaces: 0 };
  c.on("error", (e: Error & { condition?: string; code?: string }) => {
    // COMPAT: @xmpp/connection's open() starts waiting for the server's stream
    // header only once its own header write has completed; after STARTTLS the
    // answer often comes first, so the restart's open() times out `timeout` ms
    // after a login that went on fine. Client-side: counted, not a finding.
    if (e.name === "TimeoutError" && conn.opens >= 2 && /at Client\.open /.test(e.stack ?? "")) {
      conn.openRaces++;
      return;
    }
    const text = e.condition ?? (e.code ? `${e.code} ${e.message}` : `${e.name ?? "Error"}${e.message ? `: ${e.message}` : ""}`);
    (conn.stopping ? conn.afterStop : conn.errors).push(text);
  });
  c.on("disconnect", () => void conn.disconnects++);
  c.on("open", () => void conn.opens++);
  c.on("stanza", (s: Element) => {
    if (s.name !== "message") return;
    const r = s.getChild("result", NS_MAM);
    if (r) collectors.get(r.attrs.queryid as string)?.push(r);
  });
  return conn;
}

/** One MAM query over the wire: the <result/> elements and the <fin/>. */
async function mamQuery(conn: Conn, set: Element): Promise<{ results: Element[]; fin: Element }> {
  const queryid = `q${++queryCounter}`;
  const results: Element[] = [];
  collectors.set(queryid, results);
  try {
    const iq = await conn.c.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: NS_MAM, queryid }, set)), 30_000);
    const fin = iq.getChild("fin", NS_MAM);
    if (!fin) throw new Error(`MAM query of ${conn.label}: no <fin/> in ${iq.toString()}`);
    return { results, fin };
  } finally {
    collectors.delete(queryid);
  }
}

const rsm = (...children: (Element | null)[]) => xml("set", { xmlns: NS_RSM }, ...children);

// ---- one run ------------------------------------------------------------------------------

interface RunResult {
  problems: string[];
}

async function loadRun(name: string, modules: string[], templateDb: string, certsFrom: string | undefined, dir: string, opts: LoadOptions): Promise<RunResult> {
  const problems: string[] = [];
  const runDir = join(dir, name);
  const dataDir = join(runDir, "data");
  mkdirSync(dataDir, { recursive: true });
  const db = join(dataDir, "db.sqlite");
  copyFileSync(templateDb, db);
  if (certsFrom && existsSync(certsFrom)) {
    // the certificate the first run generated (2048-bit RSA): saves generating another
    mkdirSync(join(dataDir, "certs"), { recursive: true });
    for (const f of readdirSync(certsFrom)) copyFileSync(join(certsFrom, f), join(dataDir, "certs", f));
  }
  const port = await freePort();
  const configFile = join(runDir, "config.json");
  writeFileSync(configFile, JSON.stringify(serverConfig(db, port, modules, opts), null, 2));
  const label = `${name === "smart" ? "mam + smart retention" : "mam"}, SQLite synchronous=${opts.synchronous}`;

  const t0 = now();
  const server = await startServer(configFile, port, opts);
  const startMs = now() - t0;

  const N = opts.clients;
  const load: Conn[] = Array.from({ length: N }, (_, i) => openClient(port, i, "load"));
  const queriers: Conn[] = Array.from({ length: Math.min(opts.mamClients, N) }, (_, i) => openClient(port, i, "mam"));
  const all = [...load, ...queriers];
  const shutdown = async () => {
    for (const c of all) c.c.removeAllListeners("stanza");
    await Promise.all(all.map((k) => withTimeout(k.c.stop(), 5000, `stopping ${k.label}`).catch(() => {})));
  };

  try {
    // ---- log in ----------------------------------------------------------------------
    const t1 = now();
    await pool(all, 8, async (k) => {
      await k.c.start();
    });
    const loginMs = now() - t1;
    const withoutSm = all.filter((k) => !k.c.streamManagement.enabled).length;
    if (withoutSm > 0) problems.push(`${withoutSm} clients have no stream management after logging in`);
    const plain = all.filter((k) => !k.c.isSecure()).length;
    // Bind 2 (so SASL2) makes the resource <tag>-<8 hex digits>; legacy binding would give the tag itself
    const notBind2 = all.filter((k) => !/^(load|mam)-[0-9a-f]{8}$/.test(k.c.jid?.resource ?? "")).map((k) => `${k.label} as ${k.c.jid?.toString()}`);
    if (notBind2.length > 0) problems.push(`${notBind2.length} clients were not bound with SASL2 + Bind 2, e.g. ${notBind2.slice(0, 3).join(", ")}`);
    // available, and the presence processed before anyone sends (a ping answered after it)
    await Promise.all(
      load.map(async (k) => {
        await k.c.send(xml("presence"));
        await k.c.iqCaller.request(xml("iq", { type: "get", to: DOMAIN }, xml("ping", { xmlns: "urn:xmpp:ping" })), 30_000);
      }),
    );
    console.log(
      `load  server (${label}) listening after ${(startMs / 1000).toFixed(1)} s (pid ${server.pid}); ${N} + ${queriers.length} clients logged in in ${(loginMs / 1000).toFixed(2)} s` +
        `  (@xmpp/client, ${plain === 0 ? "STARTTLS" : `${plain} without TLS`}, SASL2 SCRAM-SHA-1 with user-agent id, Bind 2, stream management)`,
    );

    // ---- bookkeeping -----------------------------------------------------------------
    const sentAt: number[][] = Array.from({ length: N }, () => []); // [sender][seq]
    const target: number[][] = Array.from({ length: N }, () => []);
    const got: number[][] = Array.from({ length: N }, () => []); // receipts per [sender][seq]
    const lastSeq: number[][] = Array.from({ length: N }, () => new Array<number>(N).fill(-1)); // [receiver][sender]
    const inflight = new Array<number>(N).fill(0);
    const sentTo = new Array<number>(N).fill(0);
    let sent = 0;
    let unique = 0;
    let duplicated = 0;
    let misrouted = 0;
    let outOfOrder = 0;
    let badFrom = 0;
    let noStanzaId = 0;
    let bounced = 0;
    let strays = 0;
    let lastReceipt = 0;
    let lastProgress = now();
    let stopSending = false;
    const latencies: number[] = [];
    const bounces: string[] = [];
    let seed = 20240601;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
      return seed % n;
    };

    const pump = (i: number) => {
      const k = load[i]!;
      while (inflight[i]! < opts.window && !stopSending && (opts.duration > 0 || sentAt[i]!.length < opts.messages)) {
        let t = rand(N - 1);
        if (t >= i) t++;
        const seq = sentAt[i]!.length;
        target[i]!.push(t);
        sentAt[i]!.push(now());
        inflight[i]!++;
        sentTo[t]!++;
        sent++;
        lastProgress = now();
        k.c
          .send(xml("message", { to: `user${t}@${DOMAIN}`, type: "chat", id: `m${i}-${seq}` }, xml("body", {}, `load ${i} ${seq}`)))
          .catch((e: Error) => k.errors.push(`send: ${e.message}`));
      }
    };

    load.forEach((k, r) => {
      k.c.on("stanza", (s: Element) => {
        if (s.name !== "message") return;
        if (s.attrs.type === "error") {
          bounced++;
          if (bounces.length < 3) bounces.push(s.toString().slice(0, 300));
          return;
        }
        const body = s.getChildText("body");
        if (body === null) return; // MAM results, acks
        const m = /^load (\d+) (\d+)$/.exec(body);
        if (!m) {
          strays++;
          return;
        }
        const i = Number(m[1]);
        const seq = Number(m[2]);
        const t = now();
        if (target[i]?.[seq] === undefined) {
          strays++;
          return;
        }
        if (target[i]![seq] !== r) misrouted++;
        if (!String(s.attrs.from ?? "").startsWith(`user${i}@${DOMAIN}/`)) badFrom++;
        if (s.getChild("stanza-id", NS_SID)?.attrs.by !== `user${r}@${DOMAIN}`) noStanzaId++;
        if (seq < lastSeq[r]![i]!) outOfOrder++;
        lastSeq[r]![i] = Math.max(lastSeq[r]![i]!, seq);
        const n = (got[i]![seq] ?? 0) + 1;
        got[i]![seq] = n;
        if (n > 1) {
          duplicated++;
          return;
        }
        unique++;
        latencies.push(t - sentAt[i]![seq]!);
        lastReceipt = t;
        lastProgress = t;
        inflight[i]!--;
        pump(i);
      });
    });
    for (const k of queriers) {
      k.c.on("stanza", (s: Element) => {
        if (s.name === "message" && s.getChild("body")) strays++; // no presence: nothing should come here
      });
    }

    // ---- the load, with MAM pages of 50 queried alongside -------------------------------
    let loadRunning = true;
    const mamTimes: number[] = [];
    const mamSizes: number[] = [];
    let shortPages = 0;
    const mamLoops = queriers.map(async (k) => {
      let full = false;
      while (loadRunning) {
        const s = now();
        try {
          const { results } = await mamQuery(k, rsm(xml("max", {}, "50"), xml("before")));
          mamTimes.push(now() - s);
          mamSizes.push(results.length);
          // the archive only grows: once a page was full, every later one must be
          if (results.length === 50) full = true;
          else if (full) shortPages++;
        } catch (e) {
          if (loadRunning) problems.push(`MAM query under load failed for ${k.label}: ${(e as Error).message}`);
          return;
        }
        await sleep(opts.mamPauseMs);
      }
    });

    const genCpu0 = process.cpuUsage();
    const srv0 = procStats(server.pid);
    const start = now();
    for (let i = 0; i < N; i++) pump(i);
    if (opts.duration > 0) {
      await sleep(opts.duration * 1000);
      stopSending = true;
    }
    const allSent = () => stopSending || sentAt.every((a) => a.length >= opts.messages);
    for (;;) {
      if (allSent() && unique === sent) break;
      if (now() - lastProgress > opts.settleMs) break;
      if (all.some((k) => k.disconnects > 0)) {
        await sleep(opts.settleMs); // let whatever is still underway arrive, then report
        break;
      }
      await sleep(10);
    }
    const elapsed = Math.max(1, (lastReceipt || now()) - start);
    const srv1 = procStats(server.pid);
    const genCpu = process.cpuUsage(genCpu0);
    const cpuWindow = now() - start; // the CPU figures cover the settling wait too
    loadRunning = false;
    await Promise.all(mamLoops);
    await sleep(200); // anything late (a duplicate) still counts
    const lost = sent - unique;

    const p = percentiles(latencies);
    const planned = opts.duration > 0 ? sent : N * opts.messages;
    const total = sent < planned ? `${fmt(sent)} of ${fmt(planned)} messages (the rest never sent: windows held by lost messages)` : `${fmt(sent)} messages`;
    console.log(
      `load  ${N} clients, ${total} (${label}): ${fmt((unique / elapsed) * 1000)} msg/s end-to-end, latency p50 ${p(50)} ms p99 ${p(99)} ms, lost ${lost}, duplicated ${duplicated}` +
        `  (window ${opts.window} per client, ${(elapsed / 1000).toFixed(2)} s, max ${p(100)} ms; out of order ${outOfOrder}, misrouted ${misrouted}, bounced ${bounced})`,
    );
    const mp = percentiles(mamTimes);
    const avgSize = mamSizes.length === 0 ? 0 : mamSizes.reduce((a, b) => a + b, 0) / mamSizes.length;
    console.log(
      `load  MAM page of 50 under load (${label}): p50 ${mp(50)} ms p99 ${mp(99)} ms  (${fmt(mamTimes.length)} queries from ${queriers.length} clients, newest page (RSM <before/>), ${avgSize.toFixed(1)} results each)`,
    );
    if (srv0 && srv1) {
      const genPct = ((genCpu.user + genCpu.system) / 1000 / cpuWindow) * 100;
      console.log(
        `load  server process (${label}): CPU ${(((srv1.cpuMs - srv0.cpuMs) / cpuWindow) * 100).toFixed(0)} % of a core during the load, RSS ${fmt(srv1.rssKb / 1024)} MB (peak ${fmt(srv1.peakKb / 1024)} MB); load generator CPU ${genPct.toFixed(0)} %`,
      );
    }

    if (lost > 0) {
      const missing: string[] = [];
      for (let i = 0; i < N && missing.length < 5; i++)
        for (let s = 0; s < sentAt[i]!.length && missing.length < 5; s++) if (!got[i]![s]) missing.push(`load ${i} ${s} (to user${target[i]![s]})`);
      problems.push(`${lost} of ${sent} messages never arrived, e.g. ${missing.join(", ")}`);
    }
    if (duplicated > 0) problems.push(`${duplicated} messages arrived more than once`);
    if (misrouted > 0) problems.push(`${misrouted} messages arrived at the wrong user`);
    if (outOfOrder > 0) problems.push(`${outOfOrder} messages arrived out of order (per sender and recipient)`);
    if (badFrom > 0) problems.push(`${badFrom} messages had a wrong 'from'`);
    if (noStanzaId > 0) problems.push(`${noStanzaId} messages arrived without the recipient's stanza-id (not archived?)`);
    if (bounced > 0) problems.push(`${bounced} error messages came back, e.g. ${bounces.join(" | ")}`);
    if (strays > 0) problems.push(`${strays} unexpected messages with a body`);
    if (shortPages > 0) problems.push(`${shortPages} MAM pages had fewer than 50 results after a full one`);

    // ---- archives, over the wire --------------------------------------------------------
    const sentBy = sentAt.map((a) => a.length);
    const counts = new Array<number | undefined>(N);
    await pool(load, 8, async (k, u) => {
      const { fin } = await mamQuery(k, rsm(xml("max", {}, "0")));
      counts[u] = Number(fin.getChild("set", NS_RSM)?.getChildText("count") ?? Number.NaN);
    });
    const wrongCounts = counts.map((c, u) => ({ u, c, want: sentBy[u]! + sentTo[u]! })).filter((x) => x.c !== x.want);
    if (wrongCounts.length > 0)
      problems.push(
        `archive counts differ from sent + received for ${wrongCounts.length} users, e.g. ${wrongCounts
          .slice(0, 5)
          .map((x) => `user${x.u}: ${x.c} archived, ${x.want} expected`)
          .join("; ")}`,
      );
    const verify = Math.min(opts.verifyUsers, N);
    let pagedItems = 0;
    let pages = 0;
    const verifyProblems: string[] = [];
    for (let u = 0; u < verify; u++) {
      const k = load[u]!;
      const expected = new Set<string>();
      for (let s = 0; s < sentBy[u]!; s++) expected.add(`load ${u} ${s}`);
      for (let i = 0; i < N; i++) for (let s = 0; s < sentBy[i]!; s++) if (target[i]![s] === u) expected.add(`load ${i} ${s}`);
      const seen = new Map<string, number>();
      let after: string | undefined;
      for (;;) {
        const { results, fin } = await mamQuery(k, rsm(xml("max", {}, "50"), after === undefined ? null : xml("after", {}, after)));
        pages++;
        for (const r of results) {
          const body = r.getChild("forwarded", NS_FORWARD)?.getChild("message")?.getChildText("body") ?? "";
          seen.set(body, (seen.get(body) ?? 0) + 1);
          pagedItems++;
        }
        if (fin.attrs.complete === "true" || results.length === 0) break;
        after = fin.getChild("set", NS_RSM)?.getChildText("last") ?? undefined;
        if (after === undefined) {
          verifyProblems.push(`user${u}: an incomplete MAM page without <last/>`);
          break;
        }
      }
      const missing = [...expected].filter((b) => !seen.has(b));
      const extra = [...seen.keys()].filter((b) => !expected.has(b));
      const twice = [...seen.entries()].filter(([, n]) => n > 1);
      if (missing.length + extra.length + twice.length > 0)
        verifyProblems.push(
          `user${u}'s archive: ${missing.length} missing (${missing.slice(0, 3).join(", ")}), ${extra.length} unexpected (${extra.slice(0, 3).join(", ")}), ${twice.length} more than once`,
        );
    }
    problems.push(...verifyProblems);
    const archived = counts.reduce<number>((a, c) => a + (c ?? 0), 0);
    console.log(
      `load  archives (${label}): ${N - wrongCounts.length}/${N} users hold exactly what they sent + received (${fmt(archived)} items, counted with RSM max 0); ` +
        `${verify} archives paged through (${fmt(pagedItems)} items in ${pages} pages of 50): ${verifyProblems.length === 0 ? "every message exactly once" : "MISMATCH"}`,
    );

    // ---- SIGTERM with every client still connected ----------------------------------------
    const errorsBefore = all.flatMap((k) => k.errors.map((e) => `${k.label}: ${e}`));
    if (errorsBefore.length > 0)
      problems.push(`client errors during the run: ${errorsBefore.slice(0, 5).join("; ")}${errorsBefore.length > 5 ? ` (${errorsBefore.length} in all)` : ""}`);
    const disconnected = all.filter((k) => k.disconnects > 0).map((k) => k.label);
    if (disconnected.length > 0) problems.push(`connections lost during the run: ${disconnected.slice(0, 5).join(", ")}${disconnected.length > 5 ? ` (${disconnected.length} in all)` : ""}`);
    for (const k of all) k.stopping = true;
    const sigAt = now();
    server.child.kill("SIGTERM");
    let waited: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      server.exited,
      new Promise<undefined>((r) => {
        waited = setTimeout(() => r(undefined), 10_000);
      }),
    ]);
    clearTimeout(waited);
    const stopMs = now() - sigAt;
    if (!exit) {
      server.child.kill("SIGKILL");
      problems.push(`the server did not exit within 10 s of SIGTERM`);
    } else if (exit.code !== 0) problems.push(`the server exited with code ${exit.code}${exit.signal ? ` (signal ${exit.signal})` : ""} after SIGTERM`);
    await sleep(100);
    const shut = all.filter((k) => k.afterStop.includes("system-shutdown")).length;
    // @xmpp/client answers the stream error by writing (an SM <a/>, its </stream:stream>)
    // to a socket the server already ended: EPIPE / ECONNRESET on the client side
    const expected = /^(system-shutdown|EPIPE|ECONNRESET)\b/;
    const odd = all.flatMap((k) => k.afterStop.filter((e) => !expected.test(e)).map((e) => `${k.label}: ${e}`));
    if (shut < all.length) problems.push(`${all.length - shut} of ${all.length} clients got no system-shutdown stream error`);
    if (odd.length > 0) problems.push(`client errors at the shutdown: ${odd.slice(0, 5).join("; ")}${odd.length > 5 ? ` (${odd.length} in all)` : ""}`);
    const log = server.lines;
    if (log.length > 0) problems.push(`the server logged ${log.length} lines at warn or above, e.g.:\n    ${log.slice(0, 5).join("\n    ")}`);
    const races = all.filter((k) => k.openRaces > 0).length;
    if (races > 0)
      console.log(
        `load  note (${label}): ${races}/${all.length} connections got @xmpp/client's spurious TimeoutError from its post-STARTTLS stream restart (a client-side race; ignored)`,
      );
    console.log(
      `load  SIGTERM (${label}): ${exit ? `exit code ${exit.code}` : "no exit"} after ${fmt(stopMs)} ms, ${shut}/${all.length} clients got system-shutdown; server log lines at warn or above: ${log.length}`,
    );
  } catch (e) {
    problems.push(`run aborted: ${(e as Error).stack ?? e}`);
    if (server.child.exitCode === null) server.child.kill("SIGKILL");
    if (server.lines.length > 0) problems.push(`server output:\n    ${server.lines.slice(-10).join("\n    ")}`);
  } finally {
    await shutdown();
    if (server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGKILL");
      await server.exited;
    }
  }
  for (const pr of problems) console.log(`load  PROBLEM (${label}): ${pr}`);
  return { problems };
}

// ---- entry points -------------------------------------------------------------------------

/** Runs the load benchmark; throws after printing everything if a run found a problem. */
export async function loadBench(options: Partial<LoadOptions> = {}): Promise<void> {
  const opts: LoadOptions = { ...DEFAULTS, ...options };
  const tlsCheck = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
  // the server's certificate is self-signed (generated at start); Node's warning about that is meant, so muted
  const warningListeners = process.listeners("warning");
  process.removeAllListeners("warning");
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  if (!speedUpScram()) console.log("load  note: could not replace @xmpp/client's SCRAM key derivation: logins are slow (~0.65 s each)");
  if (opts.server === "dist" && distIsStale()) {
    console.log("load  note: src/ has files newer than dist/, which bin/mamkit.js runs: if they changed, run `npm run build` or use --server src");
  }
  const dir = mkdtempSync(join(tmpdir(), "mamkit-load-"));
  if (!opts.keep) tempDirs.add(dir);
  const problems: string[] = [];
  try {
    // accounts once, into a template database each run copies
    const accountsDb = join(dir, "accounts", "db.sqlite");
    const accountsConfig = join(dir, "accounts.json");
    writeFileSync(accountsConfig, JSON.stringify(serverConfig(accountsDb, 0, BASE_MODULES, opts), null, 2));
    const ta = now();
    await createAccounts(accountsConfig, opts.clients, opts);
    for (const suffix of ["-wal", "-shm"]) if (existsSync(accountsDb + suffix)) throw new Error(`${accountsDb}${suffix} left behind by adduser`);
    console.log(
      `load  ${opts.clients} accounts created with \`mamkit adduser\` (password on standard input, 4 processes at a time) in ${((now() - ta) / 1000).toFixed(1)} s; server: ${cliCommand(opts).slice(1).join(" ").replace(root, "")} serve`,
    );
    let certs: string | undefined;
    for (const run of opts.runs) {
      const modules = run === "smart" ? [...BASE_MODULES, "mam_smart_retention"] : BASE_MODULES;
      const r = await loadRun(run, modules, accountsDb, certs, dir, opts);
      certs ??= join(dir, run, "data", "certs");
      problems.push(...r.problems);
    }
  } finally {
    if (tlsCheck === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = tlsCheck;
    for (const l of warningListeners) process.on("warning", l);
    if (opts.keep) console.log(`load  kept ${dir}`);
    else {
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    }
  }
  if (problems.length > 0) throw new Error(`load: ${problems.length} problem(s), see the PROBLEM lines above`);
}

function optionsFromArgv(argv: string[]): Partial<LoadOptions> {
  const { values } = parseArgs({
    args: argv,
    options: {
      clients: { type: "string" },
      messages: { type: "string" },
      duration: { type: "string" },
      window: { type: "string" },
      "mam-clients": { type: "string" },
      "verify-users": { type: "string" },
      sync: { type: "string" },
      runs: { type: "string" },
      server: { type: "string" },
      settle: { type: "string" },
      keep: { type: "boolean" },
    },
  });
  const env = process.env;
  const pick = (flag: string | undefined, name: string) => flag ?? env[`LOAD_${name}`];
  const int = (v: string | undefined, what: string, min: number) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${what}: expected an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  const o: Partial<LoadOptions> = {};
  const set = <K extends keyof LoadOptions>(k: K, v: LoadOptions[K] | undefined) => {
    if (v !== undefined) o[k] = v;
  };
  set("clients", int(pick(values.clients, "CLIENTS"), "clients", 2));
  set("messages", int(pick(values.messages, "MESSAGES"), "messages", 1));
  set("duration", int(pick(values.duration, "DURATION"), "duration", 0));
  set("window", int(pick(values.window, "WINDOW"), "window", 1));
  set("mamClients", int(pick(values["mam-clients"], "MAM_CLIENTS"), "mam-clients", 0));
  set("verifyUsers", int(pick(values["verify-users"], "VERIFY_USERS"), "verify-users", 0));
  set("settleMs", int(pick(values.settle, "SETTLE_MS"), "settle", 100));
  const sync = pick(values.sync, "SYNC");
  if (sync !== undefined && sync !== "full" && sync !== "normal") throw new Error(`sync: full or normal, got ${JSON.stringify(sync)}`);
  set("synchronous", sync as LoadOptions["synchronous"] | undefined);
  const runs = pick(values.runs, "RUNS");
  if (runs !== undefined) {
    const list = runs.split(",").map((s) => s.trim());
    if (list.length === 0 || list.some((r) => r !== "mam" && r !== "smart")) throw new Error(`runs: a list of mam and smart, got ${JSON.stringify(runs)}`);
    set("runs", list as LoadOptions["runs"]);
  }
  const server = pick(values.server, "SERVER");
  if (server !== undefined && server !== "dist" && server !== "src") throw new Error(`server: dist or src, got ${JSON.stringify(server)}`);
  set("server", server as LoadOptions["server"] | undefined);
  if (values.keep || env.LOAD_KEEP === "1") o.keep = true;
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let options: Partial<LoadOptions>;
  try {
    options = optionsFromArgv(process.argv.slice(2));
  } catch (e) {
    console.error(`load: ${(e as Error).message}`);
    process.exit(2);
  }
  process.once("SIGINT", () => process.exit(130)); // the exit handler kills the server
  console.log(`node ${process.version}, ${process.platform}/${process.arch}`);
  loadBench(options).then(
    () => process.exit(0),
    (e: Error) => {
      console.error(e.message);
      process.exit(1);
    },
  );
}

