// Load over raw sockets with stream management, for the tests that break
// something under it (a killed server, a restarted database): senders log in,
// push messages as fast as a window of unacknowledged ones allows, and note
// the highest h the server acknowledged.
import { b64, header, Raw } from "../c2s/raw.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Logs in with PLAIN, binds, enables stream management. */
export async function smLogin(port: number, user: string): Promise<Raw> {
  const c = new Raw(port);
  c.send(header());
  await c.until(/<\/stream:features>/, 10_000);
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64(`\0${user}\0${user}-password`)}</auth>`);
  await c.until(/<success/, 10_000);
  c.buf = "";
  c.send(header());
  await c.until(/<\/stream:features>/);
  c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>load</resource></bind></iq>");
  await c.until(/<\/jid>/);
  c.send("<enable xmlns='urn:xmpp:sm:3'/>");
  await c.until(/<enabled /);
  c.buf = "";
  return c;
}

/** The highest h in the server's acks so far. */
export function ackedOf(c: Raw): number {
  let h = 0;
  for (const m of c.buf.matchAll(/<a xmlns="urn:xmpp:sm:3" h="(\d+)"\/>/g)) h = Math.max(h, Number(m[1]));
  return h;
}

/** Sends messages as fast as the window allows until `stop()`; the k-th message after <enable/> has id s<k>. */
export function pump(c: Raw, sender: string, window: number): { stop(): void; sent(): number } {
  let sent = 0;
  let running = true;
  void (async () => {
    while (running && !c.closed) {
      if (sent - ackedOf(c) >= window) {
        c.send("<r xmlns='urn:xmpp:sm:3'/>");
        await sleep(2);
        continue;
      }
      sent++;
      c.send(`<message to='sink@localhost' type='chat' id='${sender}-${sent}'><body>${sender} ${sent}</body></message>`);
      if (sent % 10 === 0) c.send("<r xmlns='urn:xmpp:sm:3'/>");
      if (sent % 50 === 0) await sleep(0);
    }
  })();
  return {
    stop: () => {
      running = false;
    },
    sent: () => sent,
  };
}
