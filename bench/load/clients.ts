
import { randomUUID } from "node:crypto";
import { type Client, client } from "@xmpp/client";
import { type Element, xml } from "@xmpp/xml";
import { DOMAIN, NS_MAM, NS_RSM } from "./common.js";
import { password } from "./server.js";

// ---- clients ------------------------------------------------------------------------------

export interface Conn {
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

export const collectors = new Map<string, Element[]>();
let queryCounter = 0;

export function openClient(port: number, user: number, resource: string): Conn {
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
export async function mamQuery(conn: Conn, set: Element): Promise<{ results: Element[]; fin: Element }> {
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

export const rsm = (...children: (Element | null)[]) => xml("set", { xmlns: NS_RSM }, ...children);
