// What the Prosody interop tests share (prosody.test.ts on SQLite, prosody-postgres.test.ts on
// PostgreSQL): a Prosody 0.12 of Debian's package run from a config written into a temp folder,
// bound to 127.0.0.1 on a free port, stopped with SIGTERM; and the XMPP side both servers are
// driven through with @xmpp/client (logins, the whole MAM archive page by page, prefs, roster).
//
// Prosody runs as the current user (run_as_root where that is root). Every Prosody program is
// started with --config of the folder: never on the system's /etc/prosody.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@xmpp/client";
import { type Element, xml } from "@xmpp/xml";
import { newClient } from "../e2e/helpers.js";
import { portOpen } from "../helpers/net.js";

export const NS_MAM = "urn:xmpp:mam:2";
export const NS_RSM = "http://jabber.org/protocol/rsm";
export const NS_ROSTER = "jabber:iq:roster";

/** Whether prosodyctl reports LuaDBI (Prosody's SQL storage can load). */
export function prosodyWithDbi(): boolean {
  try {
    const about = execFileSync("prosodyctl", ["about"], { encoding: "utf8", timeout: 15_000, stdio: ["ignore", "pipe", "ignore"] });
    return /LuaDBI/.test(about);
  } catch {
    return false;
  }
}

/** Whether a Debian package is installed (dpkg -s); false where there is no dpkg. */
export function debianPackage(name: string): boolean {
  try {
    const status = execFileSync("dpkg", ["-s", name], { encoding: "utf8", timeout: 15_000, stdio: ["ignore", "pipe", "ignore"] });
    return /^Status: install ok installed$/m.test(status);
  } catch {
    return false;
  }
}

export interface Prosody {
  dir: string;
  port: number;
  config: string;
}

/** A fresh temp folder for one Prosody (data, certs, config, log); the port is set later. */
export function setUp(prefix = "mamkit-prosody-interop-"): Prosody {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(dir, "data"));
  mkdirSync(join(dir, "certs"));
  return { dir, port: 0, config: join(dir, "prosody.cfg.lua") };
}

/** Prosody's `sql` setting for a SQLite file. */
export function sqliteSql(file: string): string {
  return `{ driver = "SQLite3", database = "${file}" }`;
}

/** Prosody's `sql` setting for a PostgreSQL database on 127.0.0.1. */
export function postgresSql(o: { database: string; port: number; username: string; password: string }): string {
  return `{ driver = "PostgreSQL", database = "${o.database}", host = "127.0.0.1", port = ${o.port}, username = "${o.username}", password = "${o.password}" }`;
}

/** Writes the config: c2s on 127.0.0.1:p.port, SQL storage with the given `sql` table, host "localhost". */
export function writeConfig(p: Prosody, sql: string): void {
  const root = process.getuid?.() === 0;
  const lua = [
    root ? 'prosody_user = "root"\nprosody_group = "root"\nrun_as_root = true' : "",
    "daemonize = false",
    `pidfile = "${p.dir}/prosody.pid"`,
    `data_path = "${p.dir}/data"`,
    `certificates = "${p.dir}/certs"`,
    'interfaces = { "127.0.0.1" }',
    `c2s_ports = { ${p.port} }`,
    "s2s_ports = { }",
    "c2s_require_encryption = false",
    "allow_unencrypted_plain_auth = true",
    'authentication = "internal_hashed"',
    'storage = "sql"',
    `sql = ${sql}`,
    'archive_expires_after = "never"',
    `log = { { levels = { min = "info" }, to = "file", filename = "${p.dir}/prosody.log" } }`,
    // no smacks: @xmpp/client 0.14 and Prosody 0.12 disagree on ack counts ("handled 2 new
    // stanzas, but we sent 1") and Prosody then drops the client; this test is about the database
    'modules_enabled = { "roster", "saslauth", "disco", "mam", "carbons", "ping", "presence" }',
    'modules_disabled = { "s2s" }',
    'VirtualHost "localhost"',
  ].join("\n");
  writeFileSync(p.config, `${lua}\n`);
}

/** prosodyctl register, with this folder's config. */
export function register(p: Prosody, user: string, password: string): void {
  execFileSync("prosodyctl", ["--config", p.config, "register", user, "localhost", password], { stdio: "ignore", timeout: 20_000 });
}

/** Starts Prosody on the config and waits until its c2s port accepts (15 s); rejects with its output and log. */
export async function startProsody(p: Prosody): Promise<ChildProcess> {
  const child = spawn("prosody", ["--config", p.config], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const start = Date.now();
  while (!(await portOpen(p.port))) {
    if (child.exitCode !== null || Date.now() - start > 15_000) {
      child.kill("SIGKILL");
      throw new Error(`prosody did not start:\n${out}\n${readLog(p)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return child;
}

/** SIGTERM, SIGKILL after 10 s; resolves to the exit code. */
export function stopProcess(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    child.kill("SIGTERM");
  });
}

export function readLog(p: Prosody): string {
  try {
    return readFileSync(join(p.dir, "prosody.log"), "utf8");
  } catch {
    return "";
  }
}

/** Logins of alice, bob, ... (password USER-password) to a server on 127.0.0.1, and logging them all out. */
export function logins(): { login(user: string, port: number): Promise<Client>; logoutAll(): Promise<void> } {
  const clients: Client[] = [];
  return {
    login(user, port) {
      const c = newClient(`xmpp://127.0.0.1:${port}`, user, "localhost", { resource: `${user}-res` });
      clients.push(c);
      // available, so that messages to the bare JID are delivered (RFC 6121 §8.5.2.1)
      return c.start().then(async () => {
        await c.send(xml("presence"));
        // a ping answered after it: the server has processed the presence before anyone sends
        await c.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
        return c;
      });
    },
    async logoutAll() {
      for (const c of clients.splice(0)) await c.stop().catch(() => {});
    },
  };
}

export interface Item {
  id: string;
  stamp: string;
  from: string;
  to: string;
  body: string | null;
  children: string[];
}

/** A MAM data form with these fields (FORM_TYPE added). */
export function mamForm(fields: Record<string, string>): Element {
  return xml(
    "x",
    { xmlns: "jabber:x:data", type: "submit" },
    xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, NS_MAM)),
    ...Object.entries(fields).map(([k, v]) => xml("field", { var: k }, xml("value", {}, v))),
  );
}

/** The whole archive of a logged-in client, paged 10 at a time (RSM after), with the count the first page gave. */
export async function wholeArchive(c: Client, extra: Element[] = []): Promise<{ items: Item[]; count: string | null }> {
  const items: Item[] = [];
  let after: string | undefined;
  let count: string | null = null;
  for (let page = 0; page < 50; page++) {
    const got: Element[] = [];
    const queryid = `q${page}`;
    const onStanza = (s: Element) => {
      const r = s.getChild("result", NS_MAM);
      if (r?.attrs.queryid === queryid) got.push(r);
    };
    c.on("stanza", onStanza);
    const set = xml("set", { xmlns: NS_RSM }, xml("max", {}, "10"), after === undefined ? null : xml("after", {}, after));
    const res = await c.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: NS_MAM, queryid }, ...extra, set)));
    c.removeListener("stanza", onStanza);
    const fin = res.getChild("fin", NS_MAM)!;
    // the first page's count (Prosody leaves it out of later pages)
    if (page === 0) count = fin.getChild("set", NS_RSM)?.getChildText("count") ?? null;
    for (const r of got) {
      const fwd = r.getChild("forwarded", "urn:xmpp:forward:0")!;
      const m = fwd.getChild("message")!;
      items.push({
        id: r.attrs.id,
        stamp: fwd.getChild("delay", "urn:xmpp:delay")!.attrs.stamp,
        from: m.attrs.from,
        to: m.attrs.to,
        body: m.getChildText("body"),
        children: m.children.filter((x): x is Element => typeof x === "object").map((x) => `${x.attrs.xmlns ?? ""} ${x.name}`).sort(),
      });
    }
    if (fin.attrs.complete === "true") return { items, count };
    after = fin.getChild("set", NS_RSM)!.getChildText("last")!;
  }
  throw new Error("archive did not end");
}

/** Bodies of the messages a client receives from now on (not MAM results). */
export function bodies(c: Client): string[] {
  const got: string[] = [];
  c.on("stanza", (s: Element) => {
    if (s.name === "message" && s.getChild("body") && !s.getChild("result", NS_MAM)) got.push(s.getChildText("body")!);
  });
  return got;
}

export interface Prefs {
  default: string;
  always: string[];
  never: string[];
}

export async function prefsOf(c: Client): Promise<Prefs> {
  const r = await c.iqCaller.request(xml("iq", { type: "get" }, xml("prefs", { xmlns: NS_MAM })));
  const prefs = r.getChild("prefs", NS_MAM)!;
  const list = (name: string) => (prefs.getChild(name)?.getChildren("jid") ?? []).map((j) => j.text()).sort();
  return { default: prefs.attrs.default, always: list("always"), never: list("never") };
}

/** Sets MAM preferences; resolves to the prefs element of the answer. */
export async function setPrefs(c: Client, p: Prefs): Promise<Element> {
  const res = await c.iqCaller.request(
    xml(
      "iq",
      { type: "set" },
      xml(
        "prefs",
        { xmlns: NS_MAM, default: p.default },
        xml("always", {}, ...p.always.map((j) => xml("jid", {}, j))),
        xml("never", {}, ...p.never.map((j) => xml("jid", {}, j))),
      ),
    ),
  );
  return res.getChild("prefs", NS_MAM)!;
}

export async function rosterOf(c: Client): Promise<{ jid: string; name?: string; subscription: string; groups: string[] }[]> {
  const r = await c.iqCaller.request(xml("iq", { type: "get" }, xml("query", { xmlns: NS_ROSTER })));
  return r
    .getChild("query", NS_ROSTER)!
    .getChildren("item")
    .map((i) => ({ jid: i.attrs.jid, name: i.attrs.name, subscription: i.attrs.subscription, groups: i.getChildren("group").map((g) => g.text()) }));
}

/** Adds (or replaces) a roster item with a name and one group. */
export async function setRosterItem(c: Client, jid: string, name: string, group: string): Promise<void> {
  await c.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: NS_ROSTER }, xml("item", { jid, name }, xml("group", {}, group)))));
}

export function chat(to: string, body: string, ...more: Element[]): Element {
  return xml("message", { type: "chat", to, id: `m-${body.replace(/\W/g, "")}` }, xml("body", {}, body), ...more);
}
