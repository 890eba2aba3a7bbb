// Rosters as Prosody stores them (keyval store `roster`): one key per contact
// JID → { subscription, name?, groups: { [group]: true }, ask? }, and under the
// key `false` the roster's metadata { version, pending: { [jid]: true } }
// (pending = inbound subscription requests not answered yet).
import type { HostView } from "../core/module.js";
import { type KeyvalData, NON_STRING_KEYS } from "../storage/types.js";

export type Subscription = "none" | "to" | "from" | "both";

export interface RosterItem {
  subscription: Subscription;
  name?: string;
  groups: Record<string, true>;
  ask?: "subscribe";
}

export interface RosterMeta {
  version: number;
  pending: Record<string, true>;
}

export interface Roster {
  items: Map<string, RosterItem>;
  meta: RosterMeta;
}

const SUBS = new Set(["none", "to", "from", "both"]);

export async function loadRoster(host: Pick<HostView, "openStore">, user: string): Promise<Roster> {
  const data = await host.openStore("roster", "keyval").get(user);
  const items = new Map<string, RosterItem>();
  let meta: RosterMeta = { version: 0, pending: {} };
  if (data) {
    for (const [jid, v] of Object.entries(data)) {
      if (typeof v !== "object" || v === null) continue;
      const r = v as Partial<RosterItem>;
      const item: RosterItem = {
        subscription: SUBS.has(r.subscription as string) ? (r.subscription as Subscription) : "none",
        groups: typeof r.groups === "object" && r.groups !== null ? { ...r.groups } : {},
      };
      if (typeof r.name === "string") item.name = r.name;
      if (r.ask === "subscribe") item.ask = "subscribe";
      items.set(jid, item);
    }
    const m = data[NON_STRING_KEYS]?.get(false) as Partial<RosterMeta> | undefined;
    if (m) meta = { version: Number(m.version) || 0, pending: { ...(m.pending ?? {}) } };
  }
  return { items, meta };
}

/** Saves the roster with a new version; resolves with the version once it is durable. */
export async function saveRoster(host: Pick<HostView, "openStore" | "durable" | "writeMark">, user: string, roster: Roster): Promise<number> {
  roster.meta.version++;
  const data: KeyvalData = { [NON_STRING_KEYS]: new Map<unknown, unknown>([[false, roster.meta]]) };
  for (const [jid, item] of roster.items) data[jid] = item;
  const mark = host.writeMark();
  await host.openStore("roster", "keyval").set(user, data);
  await host.durable(mark);
  return roster.meta.version;
}

const busy = new Map<string, Promise<unknown>>();

/**
 * Runs a read-modify-write of one user's roster after the ones before it:
 * reads and writes are asynchronous, and two changes interleaved (two
 * resources' roster sets, a subscription answer) would lose one of them.
 */
export function withRosterLock<T>(host: Pick<HostView, "name">, user: string, fn: () => Promise<T>): Promise<T> {
  const key = `${host.name}\u0000${user}`;
  const run = (busy.get(key) ?? Promise.resolve()).then(fn, fn);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  busy.set(key, tail);
  void tail.then(() => {
    if (busy.get(key) === tail) busy.delete(key);
  });
  return run;
}

/** Does `user` let `contact` see their presence (subscription from/both)? */
export function sharesPresenceWith(item: RosterItem | undefined): boolean {
  return item?.subscription === "from" || item?.subscription === "both";
}

/** Is `user` subscribed to `contact`'s presence (subscription to/both)? */
export function subscribedTo(item: RosterItem | undefined): boolean {
  return item?.subscription === "to" || item?.subscription === "both";
}
