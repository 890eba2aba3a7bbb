// A private PostgreSQL cluster for tests: initdb into a fresh temp folder, the server on a free
// port of 127.0.0.1 and a socket in a private folder, nothing shared with a system cluster.
//
// Who may connect (the pg_hba.conf written below):
//   - the superuser `postgres`, without a password, over the socket and over 127.0.0.1 (trust);
//     `url` and createDatabase() give URLs for it;
//   - the role `mamkit` (PG_ROLE, password `secret`), over 127.0.0.1 only and checked with
//     scram-sha-256, so a test can see a wrong password refused: withRole(url, password).
//     It owns the databases createDatabase() makes, so it may create tables in them.
//
// PostgreSQL refuses to run as root. As root, its programs run as the `postgres` system user
// (Debian's package makes it) and the temp folder is handed to it. Not through runuser: runuser
// does not pass SIGINT or SIGQUIT on to its child (tried), and its pid is not the server's;
// spawn's uid/gid options start the server itself as that user, so the pid we keep is the postmaster's.
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from "node:child_process";
import { accessSync, chownSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { freePort } from "./net.js";

export const PG_ROLE = { user: "mamkit", password: "secret" } as const;
const SUPERUSER = "postgres";

export interface PgCluster {
  /** postgres://postgres@127.0.0.1:PORT/postgres (the superuser, no password) */
  readonly url: string;
  readonly port: number;
  readonly socketDir: string;
  readonly dataDir: string;
  /** A fresh empty database (owned by PG_ROLE); resolves to its URL for the superuser. */
  createDatabase(name?: string): Promise<string>;
  /** The same URL with PG_ROLE's user and the given password (its right one unless told). */
  withRole(url: string, password?: string): string;
  /** Stops the server (fast: SIGINT, immediate: SIGQUIT, i.e. crash-like) and starts it on the same port and data. */
  restart(mode?: "fast" | "immediate"): Promise<void>;
  /** Stops the server and removes its folders; again is a no-op. */
  stop(): Promise<void>;
  /** Runs SQL with psql (unaligned, tuples only); `db` is a database name (superuser, socket) or a postgres:// URL. */
  psql(sql: string, db?: string): Promise<string>;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const complete = (bin: string) => ["initdb", "postgres", "pg_ctl"].every((name) => executable(join(bin, name)));

/** The folder with initdb, postgres and pg_ctl: from PATH, else the newest /usr/lib/postgresql/N/bin (Debian keeps them off PATH). */
export function findPostgres(): { bin: string } | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir || !executable(join(dir, "initdb"))) continue;
    // /usr/local/bin/initdb may be a link into /usr/lib/postgresql/N/bin, where psql and pg_dump of the same version are
    const bin = dirname(realpathSync(join(dir, "initdb")));
    if (complete(bin)) return { bin };
  }
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+(\.\d+)?$/.test(v)) : [];
  for (const v of versions.sort((a, b) => Number(b) - Number(a))) {
    if (complete(join(root, v, "bin"))) return { bin: join(root, v, "bin") };
  }
  return undefined;
}

function postgresUser(): { uid: number; gid: number } | undefined {
  try {
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    return undefined;
  }
}

const asRoot = process.getuid?.() === 0;
const runAs = asRoot ? postgresUser() : undefined;
const found = findPostgres();
/** Whether startPg() can work here: for describe.skipIf(!pgAvailable). */
export const pgAvailable = found !== undefined && (!asRoot || runAs !== undefined);

/** Our environment without PG* variables, so a developer's PGHOST or PGPASSWORD cannot redirect a test. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PG")));
  return { ...env, LC_ALL: "C", PGCONNECT_TIMEOUT: "10" };
}

/** Runs a program to its end; resolves to its stdout, rejects with its stderr. */
function run(cmd: string, args: string[], options: SpawnOptions, input = ""): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (err += d));
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited with ${code}: ${err.trim()}`))));
    // a program that exits before reading its input (psql refused a connection) breaks the pipe:
    // its exit code above says what went wrong, the EPIPE would be an uncaught exception
    child.stdin!.once("error", () => undefined);
    child.stdin!.end(input);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Clusters whose server may still run: killed if the test process ends without stop().
const live = new Set<Cluster>();
process.on("exit", () => {
  for (const c of live) {
    c.child?.kill("SIGKILL");
    try {
      rmSync(c.base, { recursive: true, force: true });
    } catch {
      // a backend still exiting may hold the folder a moment longer; tmpdir keeps the rest
    }
  }
});

const HBA = [
  "local all all trust",
  `host all ${PG_ROLE.user} 127.0.0.1/32 scram-sha-256`,
  `host all ${SUPERUSER} 127.0.0.1/32 trust`,
  "",
].join("\n");

class Cluster implements PgCluster {
  child: ChildProcess | undefined;
  private log = "";
  private stopping: Promise<void> | undefined;
  private made = 0;
  readonly dataDir: string;
  readonly socketDir: string;

  constructor(
    readonly bin: string,
    readonly base: string,
    public port: number,
    private readonly fsync: boolean,
  ) {
    this.dataDir = join(base, "data");
    this.socketDir = join(base, "sock");
  }

  get url(): string {
    return `postgres://${SUPERUSER}@127.0.0.1:${this.port}/postgres`;
  }

  /** Options for PostgreSQL's own programs: as the postgres user when we are root, in a folder it may enter. */
  options(): SpawnOptions {
    return { cwd: this.base, env: cleanEnv(), ...(runAs ?? {}) };
  }

  /** Starts the server and waits until it answers a query; rejects with its log if it exits first. */
  async launch(): Promise<void> {
    const settings = ["listen_addresses=127.0.0.1", "max_connections=200", "shared_buffers=16MB", "password_encryption=scram-sha-256"];
    if (!this.fsync) settings.push("fsync=off");
    const args = ["-D", this.dataDir, "-p", String(this.port), "-k", this.socketDir, ...settings.flatMap((s) => ["-c", s])];
    this.log = "";
    const child = spawn(join(this.bin, "postgres"), args, { ...this.options(), stdio: ["ignore", "ignore", "pipe"] });
    this.child = child;
    live.add(this);
    child.stderr!.on("data", (d) => (this.log = (this.log + d).slice(-8000)));
    // a cluster a test forgot to stop must not keep the test process alive (the exit hook kills it)
    child.unref();
    (child.stderr as Socket).unref();
    const until = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postgres exited while starting:\n${this.log}`);
      if ((await this.psql("SELECT 1").catch(() => "")) === "1") return;
      if (Date.now() > until) {
        child.kill("SIGKILL");
        throw new Error(`postgres did not accept connections within 30 s:\n${this.log}`);
      }
      await sleep(20);
    }
  }

  /** Signals the server and waits for it to exit (SIGKILL after 30 s). */
  async halt(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    await exited;
    clearTimeout(timer);
  }

  async createDatabase(name = `t${++this.made}_${Math.random().toString(36).slice(2, 8)}`): Promise<string> {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
    await this.psql(`CREATE DATABASE ${name} OWNER ${PG_ROLE.user}`);
    return this.url.replace(/\/postgres$/, `/${name}`);
  }

  withRole(url: string, password: string = PG_ROLE.password): string {
    const u = new URL(url);
    u.username = PG_ROLE.user;
    u.password = password;
    return u.toString();
  }

  async restart(mode: "fast" | "immediate" = "fast"): Promise<void> {
    if (this.stopping !== undefined) throw new Error("this cluster was stopped");
    await this.halt(mode === "fast" ? "SIGINT" : "SIGQUIT");
    await this.launch();
  }

  stop(): Promise<void> {
    this.stopping ??= this.halt("SIGINT").then(() => {
      live.delete(this);
      rmSync(this.base, { recursive: true, force: true });
    });
    return this.stopping;
  }

  psql(sql: string, db = "postgres"): Promise<string> {
    // -w: never prompt for a password (psql would read the terminal); -X: no ~/.psqlrc
    const target = db.startsWith("postgres://") ? [db] : ["-h", this.socketDir, "-p", String(this.port), "-U", SUPERUSER, "-d", db];
    const args = ["-X", "-A", "-t", "-w", "-q", "-v", "ON_ERROR_STOP=1", ...target];
    return run(psqlPath(this.bin), args, { env: cleanEnv() }, sql).then((out) => out.replace(/\n$/, ""));
  }
}

function psqlPath(bin: string): string {
  return executable(join(bin, "psql")) ? join(bin, "psql") : "psql";
}

/** initdb into a fresh temp folder, then the server on a free port; resolves once it accepts connections. */
export async function startPg(opts: { fsync?: boolean } = {}): Promise<PgCluster> {
  if (!found || !pgAvailable) throw new Error("PostgreSQL is not available here (check pgAvailable first)");
  const base = mkdtempSync(join(tmpdir(), "mamkit-pg-"));
  const c = new Cluster(found.bin, base, await freePort(), opts.fsync !== false);
  try {
    mkdirSync(c.socketDir);
    if (runAs) for (const dir of [base, c.socketDir]) chownSync(dir, runAs.uid, runAs.gid);
    // --no-sync: initdb's files need not survive a power cut, a test cluster lives for one run
    await run(join(found.bin, "initdb"), ["-D", c.dataDir, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"], c.options());
    // overwriting keeps initdb's file and its owner
    writeFileSync(join(c.dataDir, "pg_hba.conf"), HBA);
    // the port was free a moment ago; another process may take it before postgres binds: try another
    for (let attempt = 1; ; attempt++) {
      try {
        await c.launch();
        break;
      } catch (e) {
        if (attempt >= 3 || !/could not (bind|create listen)/i.test(String(e))) throw e;
        c.port = await freePort();
      }
    }
    await c.psql(`CREATE ROLE ${PG_ROLE.user} LOGIN CREATEDB PASSWORD '${PG_ROLE.password}'`);
    return c;
  } catch (e) {
    await c.stop();
    throw e;
  }
}
