
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BASE_MODULES, DEFAULTS, type LoadOptions, now, root, speedUpScram, withTimeout } from "./load/common.js";
import { type Conn, openClient } from "./load/clients.js";
import { checkArchives, logIn, stopWithSigterm, traffic } from "./load/phases.js";
import { cliCommand, createAccounts, distIsStale, freePort, serverConfig, startServer, tempDirs } from "./load/server.js";


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

  const ctx = { label, opts, problems, server, N, load, queriers, all, startMs };
  try {
    await logIn(ctx);
    const sent = await traffic(ctx);
    await checkArchives(ctx, sent);
    await stopWithSigterm(ctx);
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

