
import { pbkdf2Sync, } from "node:crypto";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../..", import.meta.url));
export const NS_MAM = "urn:xmpp:mam:2";
export const NS_RSM = "http://jabber.org/protocol/rsm";
export const NS_FORWARD = "urn:xmpp:forward:0";
export const NS_SID = "urn:xmpp:sid:0";
export const DOMAIN = "localhost";
export const BASE_MODULES = ["saslauth", "sasl2", "bind2", "roster", "presence", "disco", "ping", "smacks", "carbons", "mam"];

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

export const DEFAULTS: LoadOptions = {
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

export const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const now = () => performance.now();

export function percentiles(values: number[]): (p: number) => string {
  const a = values.slice().sort((x, y) => x - y);
  return (p) => (a.length === 0 ? "-" : a[Math.min(a.length - 1, Math.floor((p / 100) * a.length))]!.toFixed(1));
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]);
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function pool<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
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
export function speedUpScram(): boolean {
  try {
    const fromXmpp = createRequire(createRequire(import.meta.url).resolve("@xmpp/sasl-scram-sha-1/package.json"));
    const bitops = fromXmpp("sasl-scram-sha-1/lib/bitops.js") as { Hi: (text: string, salt: Uint8Array, n: number) => Promise<Uint8Array> };
    bitops.Hi = async (text, salt, n) => new Uint8Array(pbkdf2Sync(text, salt, n, 20, "sha1"));
    return true;
  } catch {
    return false;
  }
}
