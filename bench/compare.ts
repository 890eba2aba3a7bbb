// `npm run bench:compare [-- --runs 3 --pairs 20 --messages 1000 --window 50 --archived 100000 --synchronous full
//   --commit-delay-ms N --commit-max-writes N --only mamkit --profile DIR --keep]`
//
// The same load against a private Prosody 0.12 and against mamkit, in one run,
// one server at a time, from a load generator in a process of its own (raw
// sockets): delivered messages/s, server CPU per 1,000 messages, delivery
// latency at a window of 1 and of `window`, MAM pages of 50 on a
// 100,000-message archive, peak RSS, and mamkit's largest event-loop delay.
// Needs Debian's prosody and lua-dbi-sqlite3; installs nothing.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import {
  CONTACTS,
  copyDatabase,
  DOMAIN,
  MAM_USER,
  password,
  processStats,
  prosodyAvailable,
  root,
  type Running,
  seedDatabase,
  startMamkit,
  startProsody,
} from "./compare/servers.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "1" },
    pairs: { type: "string", default: "20" },
    messages: { type: "string", default: "1000" },
    window: { type: "string", default: "50" },
    archived: { type: "string", default: "100000" },
    latency: { type: "string", default: "300" },
    queries: { type: "string", default: "200" },
    synchronous: { type: "string", default: "full" },
    only: { type: "string" },
    keep: { type: "boolean", default: false },
    /** mamkit's storage.commit_delay_ms / commit_max_writes (defaults: the server's). */
    "commit-delay-ms": { type: "string" },
    "commit-max-writes": { type: "string" },
    /** A folder: mamkit runs with node --cpu-prof there (one .cpuprofile per run). */
    profile: { type: "string" },
  },
});
const num = (k: keyof typeof values) => Number(values[k]);
const synchronous = values.synchronous === "normal" ? "normal" : "full";

interface Result {
  rate: number;
  cpuPer1000: number;
  lat1: [number, number];
  latW: [number, number];
  mam: Record<string, { p50: number; p99: number; results: number }>;
  mamDuring: [number, number];
  peakRssMiB: number;
  loopMaxMs?: number;
  loadgenShare: number;
}

/** Drives one load generator against one running server. */
async function runLoad(server: Running, seed: { ids: string[]; first: number; last: number }, users: string[]): Promise<Result> {
  const opts = {
    port: server.port,
    domain: DOMAIN,
    pairs: num("pairs"),
    messages: num("messages"),
    window: num("window"),
    latencyMessages: num("latency"),
    mamUser: MAM_USER,
    mamPassword: password(MAM_USER),
    ids: seed.ids,
    first: seed.first,
    last: seed.last,
    contacts: CONTACTS,
    mamQueries: num("queries"),
    password: Object.fromEntries(users.map((u) => [u, password(u)])),
  };
  const optsFile = join(server.dir, "loadgen.json");
  writeFileSync(optsFile, JSON.stringify(opts));
  const gen: ChildProcess = spawn(process.execPath, ["--import", "tsx", join(root, "bench/compare/loadgen.ts"), optsFile], {
    cwd: root,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const pid = server.child.pid!;
  const r: Partial<Result> = {};
  let cpuAt = 0;
  let messages = 0;
  for await (const line of createInterface({ input: gen.stdout! })) {
    const ev = JSON.parse(line) as Record<string, any>;
    const cpu = processStats(pid).cpuMs;
    switch (ev.phase) {
      case "error":
        throw new Error(`load generator against ${server.name}: ${ev.error}`);
      case "latency-end":
        r.lat1 = [ev.p50, ev.p99];
        break;
      case "ingest-start":
        cpuAt = cpu;
        if (server.loopFile) server.child.kill("SIGUSR2");
        break;
      case "ingest-end":
        messages = ev.delivered;
        r.rate = ev.rate;
        r.cpuPer1000 = ((cpu - cpuAt) / messages) * 1000;
        r.latW = [ev.p50, ev.p99];
        r.mamDuring = [ev.mamDuringP50, ev.mamDuringP99];
        r.loadgenShare = ev.loadgenCpuShare;
        if (server.loopFile) {
          await new Promise((res) => setTimeout(res, 150));
          r.loopMaxMs = (JSON.parse(readFileSync(server.loopFile, "utf8")) as { maxMs: number }).maxMs;
        }
        break;
      case "mam-end":
        r.mam = { after: ev.after, range: ev.range, "with-latest": ev["with-latest"] };
        break;
      case "done":
        r.peakRssMiB = processStats(pid).peakRssMiB;
        break;
    }
    gen.stdin!.write("go\n");
  }
  return r as Result;
}

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const f = (n: number | undefined, d = 0) => (n === undefined || Number.isNaN(n) ? "—" : n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d }));

function table(results: Record<string, Result[]>): string {
  const P = results.Prosody ?? [];
  const M = results.mamkit ?? [];
  const m = (rs: Result[], get: (r: Result) => number) => (rs.length ? median(rs.map(get)) : Number.NaN);
  const rows: [string, (r: Result) => number, number, "higher" | "lower"][] = [
    ["delivered messages/s", (r) => r.rate, 0, "higher"],
    ["server CPU-ms per 1,000 messages", (r) => r.cpuPer1000, 0, "lower"],
    ["latency, window 1, p50 ms", (r) => r.lat1[0], 2, "lower"],
    ["latency, window 1, p99 ms", (r) => r.lat1[1], 2, "lower"],
    [`latency, window ${num("window")}, p50 ms`, (r) => r.latW[0], 1, "lower"],
    [`latency, window ${num("window")}, p99 ms`, (r) => r.latW[1], 1, "lower"],
    ["MAM page, RSM after, p50 ms", (r) => r.mam.after!.p50, 2, "lower"],
    ["MAM page, RSM after, p99 ms", (r) => r.mam.after!.p99, 2, "lower"],
    ["MAM page, date range, p50 ms", (r) => r.mam.range!.p50, 2, "lower"],
    ["MAM page, date range, p99 ms", (r) => r.mam.range!.p99, 2, "lower"],
    ["MAM page, with + latest, p50 ms", (r) => r.mam["with-latest"]!.p50, 2, "lower"],
    ["MAM page, with + latest, p99 ms", (r) => r.mam["with-latest"]!.p99, 2, "lower"],
    ["MAM page during ingest, p99 ms", (r) => r.mamDuring[1], 1, "lower"],
    ["peak RSS MiB", (r) => r.peakRssMiB, 0, "lower"],
    ["load generator CPU share during ingest", (r) => r.loadgenShare, 2, "lower"],
  ];
  const out = ["| metric | Prosody 0.12 | mamkit | mamkit vs Prosody |", "|---|---|---|---|"];
  for (const [name, get, d, better] of rows) {
    const p = m(P, get);
    const k = m(M, get);
    const ratio = better === "higher" ? k / p : p / k;
    const vs = Number.isFinite(ratio) && name !== "load generator CPU share during ingest" ? `${f(ratio, 1)}× ${better === "higher" ? "more" : "less"}` : "";
    out.push(`| ${name} | ${f(p, d)} | ${f(k, d)} | ${vs} |`);
  }
  const loop = m(M, (r) => r.loopMaxMs ?? Number.NaN);
  out.push(`| mamkit's largest event-loop delay during ingest, ms | | ${f(loop, 1)} | |`);
  const results1 = M[0]?.mam.after?.results;
  out.push("", `(medians of ${Math.max(P.length, M.length)} run(s); MAM results per page: ${f(results1, 0)})`);
  return out.join("\n");
}

async function main(): Promise<number> {
  const missing = prosodyAvailable();
  const only = values.only;
  if (missing && only !== "mamkit") {
    process.stderr.write(`bench:compare: ${missing}. Nothing was installed; run with --only mamkit for mamkit alone.\n`);
    return 1;
  }
  const dir = mkdtempSync(join(tmpdir(), "mamkit-compare-"));
  try {
    const users = Array.from({ length: num("pairs") + 1 }, (_, i) => [`s${i}`, `r${i}`]).flat();
    process.stderr.write(`seeding ${f(num("archived"))} archived messages and ${users.length + 1} accounts…\n`);
    const seedFile = join(dir, "seed.sqlite");
    const seed = await seedDatabase(seedFile, users, num("archived"));
    const results: Record<string, Result[]> = { Prosody: [], mamkit: [] };
    for (let run = 0; run < num("runs"); run++) {
      for (const name of ["Prosody", "mamkit"] as const) {
        if (only !== undefined && only !== name.toLowerCase()) continue;
        const runDir = join(dir, `${name}-${run}`);
        const db = join(dir, `${name}-${run}.sqlite`);
        copyDatabase(seedFile, db);
        process.stderr.write(`run ${run + 1}: ${name}…\n`);
        const server = name === "Prosody" ? await startProsody(runDir, db) : await startMamkit(runDir, db, synchronous, values.profile ? ["--cpu-prof", `--cpu-prof-dir=${values.profile}`] : [], {
                ...(values["commit-delay-ms"] !== undefined && { commit_delay_ms: Number(values["commit-delay-ms"]) }),
                ...(values["commit-max-writes"] !== undefined && { commit_max_writes: Number(values["commit-max-writes"]) }),
              });
        try {
          results[name]!.push(await runLoad(server, seed, users));
        } finally {
          await server.stop();
          rmSync(db, { force: true });
        }
      }
    }
    const when = new Date().toISOString().slice(0, 10);
    process.stdout.write(
      `\nbench:compare ${when}: ${num("pairs")} pairs × ${f(num("messages"))} messages, window ${num("window")}, both copies archived, SQLite (mamkit synchronous=${synchronous}), MAM pages of 50 on ${f(num("archived"))} messages\n\n`,
    );
    process.stdout.write(`${table(results)}\n`);
    return 0;
  } finally {
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`kept ${dir}\n`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench:compare: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
