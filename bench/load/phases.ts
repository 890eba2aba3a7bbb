
import { type Element, xml } from "@xmpp/xml";
import { type Conn, mamQuery, rsm } from "./clients.js";
import { DOMAIN, type LoadOptions, NS_FORWARD, NS_RSM, NS_SID, fmt, now, percentiles, pool, sleep } from "./common.js";
import { type ServerProcess, procStats } from "./server.js";


export interface RunContext {
  label: string;
  opts: LoadOptions;
  problems: string[];
  server: ServerProcess;
  N: number;
  load: Conn[];
  queriers: Conn[];
  all: Conn[];
  startMs: number;
}

/** What was sent, for the archive checks. */
export interface Sent {
  sentAt: number[][];
  target: number[][];
  sentTo: number[];
}

export async function logIn(ctx: RunContext): Promise<void> {
  const { N, load, queriers, all, problems, label, server } = ctx;
  const startMs = ctx.startMs;
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
}

export async function traffic(ctx: RunContext): Promise<Sent> {
  const { N, load, queriers, all, opts, problems, label, server } = ctx;
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
  return { sentAt, target, sentTo };
}

export async function checkArchives(ctx: RunContext, { sentAt, target, sentTo }: Sent): Promise<void> {
  const { N, load, opts, problems, label } = ctx;
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
}

export async function stopWithSigterm(ctx: RunContext): Promise<void> {
  const { all, problems, label, server } = ctx;
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
}
