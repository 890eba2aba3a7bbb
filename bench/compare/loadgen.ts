// The load generator of `npm run bench:compare`, a process of its own: raw
// sockets, no client library, the same stanzas for Prosody and for mamkit.
// Between phases it prints a JSON line and waits for a line on stdin, so that
// the orchestrator can read the server's CPU time around each phase.
//   node --import tsx bench/compare/loadgen.ts <options.json>
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { createInterface } from "node:readline";

interface Options {
  port: number;
  domain: string;
  pairs: number;
  messages: number;
  window: number;
  latencyMessages: number;
  mamUser: string;
  mamPassword: string;
  /** Archive ids of the MAM user, oldest first (RSM `after` targets come from here). */
  ids: string[];
  first: number;
  last: number;
  contacts: number;
  mamQueries: number;
  password: Record<string, string>;
}

const opts = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as Options;
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function phase(name: string, data: Record<string, unknown> = {}): Promise<void> {
  process.stdout.write(`${JSON.stringify({ phase: name, ...data })}\n`);
  await lines.next();
}

/** One XMPP connection: text in, callbacks on complete top-level elements we look for. */
class Conn {
  buf = "";
  socket: Socket;
  onData: ((c: Conn) => void) | undefined;
  constructor() {
    this.socket = connect(opts.port, "127.0.0.1");
    this.socket.setNoDelay(true);
    this.socket.setEncoding("utf8");
    this.socket.on("data", (d: string) => {
      this.buf += d;
      this.onData?.(this);
    });
    this.socket.on("error", (err) => {
      process.stderr.write(`socket error: ${err.message}\n`);
    });
  }
  send(s: string): void {
    this.socket.write(s);
  }
  async until(re: RegExp, ms = 20_000): Promise<void> {
    const start = now();
    while (!re.test(this.buf)) {
      if (now() - start > ms) throw new Error(`timed out waiting for ${re}: ${this.buf.slice(-300)}`);
      await sleep(2);
    }
  }
}

const header = `<?xml version='1.0'?><stream:stream to='${opts.domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;

async function login(user: string, pass: string, resource: string): Promise<Conn> {
  const c = new Conn();
  c.send(header);
  await c.until(/<\/stream:features>/);
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${pass}`).toString("base64")}</auth>`);
  await c.until(/<success/);
  c.buf = "";
  c.send(header);
  await c.until(/<\/stream:features>/);
  c.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  await c.until(/<\/jid>/);
  c.send("<presence/>");
  c.buf = "";
  return c;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = values.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

// ---- messages between pairs ---------------------------------------------------------------

interface Pair {
  sender: Conn;
  receiver: Conn;
  sent: number;
  delivered: number;
  latencies: number[];
  /** Called after deliveries arrived (the window opened). */
  onDelivered?: () => void;
}

const BODY = /<body>(\d+):(\d+):([\d.]+)<\/body>/g;

function watchReceiver(p: Pair): void {
  p.receiver.onData = (c) => {
    let cut = 0;
    BODY.lastIndex = 0;
    for (let m = BODY.exec(c.buf); m; m = BODY.exec(c.buf)) {
      p.delivered++;
      p.latencies.push(now() - Number(m[3]));
      cut = BODY.lastIndex;
    }
    if (cut > 0) {
      c.buf = c.buf.slice(cut);
      p.onDelivered?.();
    }
  };
}

/** Sends `count` messages per pair, at most `window` undelivered; resolves when all arrived. */
async function traffic(pairs: Pair[], count: number, window: number, idx: number): Promise<{ ms: number; delivered: number; latencies: number[] }> {
  const start = now();
  for (const p of pairs) {
    p.sent = 0;
    p.delivered = 0;
    p.latencies = [];
  }
  const to = (i: number) => `r${i}@${opts.domain}`;
  // event-driven: a pair sends when its window opens, nothing spins
  await new Promise<void>((resolve, reject) => {
    let left = pairs.length;
    const deadline = setTimeout(() => reject(new Error(`traffic did not finish: ${pairs.map((p) => `${p.delivered}/${p.sent}`).join(" ")}`)), 300_000);
    pairs.forEach((p, i) => {
      let finished = false;
      const fill = () => {
        let out = "";
        while (p.sent < count && p.sent - p.delivered < window) {
          p.sent++;
          out += `<message to='${to(idx + i)}' type='chat' id='m${p.sent}'><body>${i}:${p.sent}:${now().toFixed(3)}</body></message>`;
        }
        if (out) p.sender.send(out);
        if (!finished && p.delivered >= count) {
          finished = true;
          p.onDelivered = undefined;
          if (--left === 0) {
            clearTimeout(deadline);
            resolve();
          }
        }
      };
      p.onDelivered = fill;
      fill();
    });
  });
  const ms = now() - start;
  return { ms, delivered: pairs.reduce((a, p) => a + p.delivered, 0), latencies: pairs.flatMap((p) => p.latencies) };
}

// ---- MAM queries ----------------------------------------------------------------------

type Kind = "after" | "range" | "with-latest";
let qn = 0;

function queryXml(kind: Kind, id: string): string {
  const rsm = (inner: string) => `<set xmlns='http://jabber.org/protocol/rsm'><max>50</max>${inner}</set>`;
  const field = (name: string, value: string) => `<field var='${name}'><value>${value}</value></field>`;
  const form = (fields: string) => `<x xmlns='jabber:x:data' type='submit'>${field("FORM_TYPE", "urn:xmpp:mam:2")}${fields}</x>`;
  let inner: string;
  if (kind === "after") {
    const after = opts.ids[Math.floor(Math.random() * (opts.ids.length - 60))]!;
    inner = rsm(`<after>${after}</after>`);
  } else if (kind === "range") {
    const day = 86_400_000;
    const start = opts.first + Math.random() * (opts.last - opts.first - day);
    inner = form(field("start", new Date(start).toISOString()) + field("end", new Date(start + day).toISOString())) + rsm("");
  } else {
    const contact = `contact${Math.floor(Math.random() * opts.contacts)}@${opts.domain}`;
    inner = form(field("with", contact)) + rsm("<before/>");
  }
  return `<iq type='set' id='${id}'><query xmlns='urn:xmpp:mam:2' queryid='${id}'>${inner}</query></iq>`;
}

/** One query; resolves with its latency (ms) once its result iq arrived, and the number of results. */
async function mamQuery(c: Conn, kind: Kind): Promise<[number, number]> {
  const id = `q${++qn}`;
  const done = new RegExp(`<iq[^>]*id=["']${id}["'][^>]*>|<iq[^>]*type=["']result["'][^>]*id=["']${id}["']`);
  const t0 = now();
  let ms = 0;
  await new Promise<void>((resolve) => {
    c.onData = (conn) => {
      if (!done.test(conn.buf)) return;
      ms = now() - t0;
      conn.onData = undefined;
      resolve();
    };
    c.send(queryXml(kind, id));
  });
  const results = c.buf.split(`queryid="${id}"`).length - 1 + c.buf.split(`queryid='${id}'`).length - 1;
  c.buf = "";
  return [ms, results];
}

async function mamSeries(c: Conn, kind: Kind, n: number): Promise<{ p50: number; p99: number; results: number }> {
  const times: number[] = [];
  let results = 0;
  for (let i = 0; i < n; i++) {
    const [ms, r] = await mamQuery(c, kind);
    times.push(ms);
    results += r;
  }
  return { p50: percentile(times, 50), p99: percentile(times, 99), results: results / n };
}

// ---- the run ----------------------------------------------------------------------------

async function main(): Promise<void> {
  const cpu0 = process.cpuUsage();
  const wall0 = now();
  const pairs: Pair[] = [];
  for (let i = 0; i < opts.pairs + 1; i++) {
    const sender = await login(`s${i}`, opts.password[`s${i}`]!, "load");
    const receiver = await login(`r${i}`, opts.password[`r${i}`]!, "load");
    const p: Pair = { sender, receiver, sent: 0, delivered: 0, latencies: [] };
    watchReceiver(p);
    pairs.push(p);
  }
  for (const p of pairs) {
    p.sender.onData = (c) => {
      c.buf = "";
    };
  }
  const mam = await login(opts.mamUser, opts.mamPassword, "mam");
  await sleep(500);
  for (const p of pairs) p.receiver.buf = "";
  mam.buf = "";

  // unloaded: one message at a time on the spare pair
  await traffic([pairs[opts.pairs]!], 30, 1, opts.pairs); // warm-up
  await phase("latency-start");
  const lat = await traffic([pairs[opts.pairs]!], opts.latencyMessages, 1, opts.pairs);
  await phase("latency-end", { p50: percentile(lat.latencies, 50), p99: percentile(lat.latencies, 99) });

  // ingest, with RSM `after` pages queried alongside
  await phase("ingest-start");
  let ingesting = true;
  const duringTimes: number[] = [];
  const alongside = (async () => {
    while (ingesting) {
      const [ms] = await mamQuery(mam, "after");
      duringTimes.push(ms);
      await sleep(20);
    }
  })();
  const cpuIngest0 = process.cpuUsage();
  const ingest = await traffic(pairs.slice(0, opts.pairs), opts.messages, opts.window, 0);
  const cpuIngest = process.cpuUsage(cpuIngest0);
  ingesting = false;
  await alongside;
  await phase("ingest-end", {
    ms: ingest.ms,
    delivered: ingest.delivered,
    rate: (ingest.delivered / ingest.ms) * 1000,
    p50: percentile(ingest.latencies, 50),
    p99: percentile(ingest.latencies, 99),
    mamDuringP50: percentile(duringTimes, 50),
    mamDuringP99: percentile(duringTimes, 99),
    mamDuringCount: duringTimes.length,
    loadgenCpuShare: (cpuIngest.user + cpuIngest.system) / 1000 / ingest.ms,
  });

  // MAM pages on a quiet server
  await phase("mam-start");
  const out: Record<string, unknown> = {};
  for (const kind of ["after", "range", "with-latest"] as Kind[]) {
    await mamSeries(mam, kind, 20); // warm-up
    out[kind] = await mamSeries(mam, kind, opts.mamQueries);
  }
  await phase("mam-end", out);
  const cpu = process.cpuUsage(cpu0);
  await phase("done", { loadgenCpuMs: (cpu.user + cpu.system) / 1000, wallMs: now() - wall0 });
  for (const p of pairs) {
    p.sender.socket.destroy();
    p.receiver.socket.destroy();
  }
  mam.socket.destroy();
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stdout.write(`${JSON.stringify({ phase: "error", error: (err as Error).stack ?? String(err) })}\n`);
  process.exit(1);
});
