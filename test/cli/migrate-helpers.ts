// Helpers of the mamkit migrate tests: the CLI as a child process, both
// tables of a database read raw (SQLite and PostgreSQL), fingerprints that
// say a source was not touched, what the stores say, a large source.
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import pg from "pg";
import { SqliteDriver } from "../../src/storage/sqlite/driver.js";
import type { StorageDriver } from "../../src/storage/types.js";
import { xml } from "../../src/xmpp/stanza.js";

const root = new URL("../..", import.meta.url).pathname;
const tsx = pathToFileURL(createRequire(join(root, "package.json")).resolve("tsx")).href;
export const PHONE = "11111111-1111-4111-8111-111111111111";

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** Starts `mamkit ARGS`; `done` resolves when it exits. */
export function start(...args: string[]): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, ["--import", tsx, join(root, "src/cli/bin.ts"), ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => {
    out += d;
  });
  child.stderr!.on("data", (d) => {
    err += d;
  });
  const done = new Promise<Run>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, out, err })));
  return { child, done };
}
export const mamkit = (...args: string[]) => start(...args).done;
export const migrate = (from: string, to: string, ...more: string[]) => mamkit("migrate", "--from", from, "--to", to, ...more);

// ---- both tables, read raw: the exact rows and the sequence ----------------------

export interface Dump {
  prosody: string[]; // each row as JSON, sorted (duplicates kept)
  archive: unknown[][]; // by sort_id
  sequence: number;
}

export function sqliteDump(file: string): Dump {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const prosody = (db.prepare('SELECT "host","user","store","key","type","value" FROM "prosody"').raw(true).all() as unknown[][]).map((r) => JSON.stringify(r)).sort();
    const archive = db.prepare('SELECT "sort_id","host","user","store","key","when","with","type","value" FROM "prosodyarchive" ORDER BY "sort_id"').raw(true).all() as unknown[][];
    const seq = db.prepare("SELECT seq FROM sqlite_sequence WHERE name='prosodyarchive'").pluck().get();
    return { prosody, archive, sequence: Number(seq ?? 0) };
  } finally {
    db.close();
  }
}

export async function withPg<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export const pgDump = (url: string): Promise<Dump> =>
  withPg(url, async (c) => {
    const p = await c.query({ text: 'SELECT "host","user","store","key","type","value" FROM "prosody"', rowMode: "array" });
    const a = await c.query({ text: 'SELECT "sort_id","host","user","store","key","when","with","type","value" FROM "prosodyarchive" ORDER BY "sort_id"', rowMode: "array" });
    const s = await c.query("SELECT last_value, is_called FROM prosodyarchive_sort_id_seq");
    return {
      prosody: p.rows.map((r) => JSON.stringify(r)).sort(),
      archive: a.rows.map((r: unknown[]) => [Number(r[0]), ...r.slice(1)]),
      sequence: s.rows[0].is_called ? Number(s.rows[0].last_value) : Number(s.rows[0].last_value) - 1,
    };
  });

/** Counts, a checksum of every row and the sequence of a PostgreSQL database, in SQL. */
export const pgFingerprint = (url: string) =>
  withPg(url, async (c) => {
    const r = await c.query(
      `SELECT (SELECT count(*) FROM prosody) AS p, (SELECT count(*) FROM prosodyarchive) AS a,
        (SELECT md5(string_agg(concat_ws('|', host, "user", store, key, type, value), ',' ORDER BY host COLLATE "C", "user" COLLATE "C", store COLLATE "C", key COLLATE "C", value COLLATE "C")) FROM prosody) AS ps,
        (SELECT md5(string_agg(concat_ws('|', sort_id, host, "user", store, key, "when", "with", type, value), ',' ORDER BY sort_id)) FROM prosodyarchive) AS as,
        (SELECT last_value FROM prosodyarchive_sort_id_seq) AS seq`,
    );
    return r.rows[0] as Record<string, string>;
  });

/** A file's bytes (hashed) and its tables' row counts. */
export function sqliteFingerprint(file: string) {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  const counts = db.prepare('SELECT (SELECT count(*) FROM "prosody") AS p, (SELECT count(*) FROM "prosodyarchive") AS a').get();
  db.close();
  return { sha256: createHash("sha256").update(readFileSync(file)).digest("hex"), counts };
}

// ---- what the stores say -------------------------------------------------------

export async function stores(d: StorageDriver) {
  const archive = d.archive("localhost", "archive");
  const items = async (user: string) =>
    (await archive.find(user)).items.map((i) => ({ id: i.id, pos: i.pos, when: i.when, with: i.with, stanza: i.stanza.toString() }));
  return {
    accounts: { alice: await d.keyval("localhost", "accounts").get("alice"), bob: await d.keyval("localhost", "accounts").get("bob") },
    roster: await d.keyval("localhost", "roster").get("alice"),
    prefs: await d.keyval("localhost", "archive_prefs").get("alice"),
    tracking: await d.map("localhost", "mam_smart_retention").get("alice", PHONE),
    archive: { alice: await items("alice"), bob: await items("bob"), carol: await items("carol") },
  };
}

/** A SQLite database of `n` archive rows (and a few prosody rows), written directly. */
export async function bigSource(file: string, n: number): Promise<void> {
  const d = new SqliteDriver(file);
  const insert = d.db.prepare('INSERT INTO "prosodyarchive" ("host","user","store","key","when","with","type","value") VALUES (?,?,?,?,?,?,?,?)');
  d.db.transaction(() => {
    for (let i = 0; i < n; i++) {
      const stanza = xml("message", { type: "chat", id: `m${i}` }, xml("body", {}, `message ${i} <&'"> é 😀`)).toString();
      insert.run("localhost", `user${i % 37}`, "archive", `id-${i}`, 1767225600 + i, `peer${i % 11}@localhost`, "xml", stanza);
    }
  })();
  await d.keyval("localhost", "accounts").set("user1", { stored_key: "k1", iteration_count: 4096 });
  await d.close();
}

export const stateOf = (value: string | undefined) => (value === undefined ? undefined : (JSON.parse(value) as { archiveRows: number; after: number | null; source: string }));
export const STATE_SQL = `SELECT "value" FROM "prosody" WHERE "host"='' AND "user"='' AND "store"='mamkit_migrate' AND "key"='state'`;

/** Waits until the destination's state row says `rows` archive rows are copied. */
export async function waitForProgress(read: () => Promise<string | undefined>, rows: number, run: Promise<Run>): Promise<void> {
  let exited = false;
  void run.then(() => {
    exited = true;
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !exited) {
    const s = stateOf(await read().catch(() => undefined));
    if (s && s.archiveRows >= rows) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(exited ? "the migration ended before it could be interrupted" : "no progress seen");
}
