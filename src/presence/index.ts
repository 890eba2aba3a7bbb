// mod_presence: RFC 6121 §3–4 for local contacts — the subscription
// handshake with roster updates and pushes, presence broadcast to subscribers
// and the account's other resources, current presence of contacts on login
// (what probes would fetch), pending requests delivered at login, and
// unavailable on logout.
import type { Element } from "@xmpp/xml";
import { defineModule } from "../core/module.js";
import type { HostView } from "../core/module.js";
import { pushRosterItem } from "../roster/index.js";
import { loadRoster, type RosterItem, saveRoster, sharesPresenceWith, subscribedTo, withRosterLock } from "../roster/store.js";
import type { StanzaEvent } from "../core/delivery.js";
import { tryParseJid } from "../xmpp/jid.js";
import { type Session, SessionSlot } from "../core/session.js";
import { cloneStanza, xml } from "../xmpp/stanza.js";

/** The last available presence a session sent (broadcast again to new contacts, probes). */
const PRESENCE = new SessionSlot<Element>("presence: last available");
const SUBSCRIPTION_TYPES = new Set(["subscribe", "subscribed", "unsubscribe", "unsubscribed"]);

interface Account {
  host: HostView;
  user: string;
  bare: string;
}

function strip(i: RosterItem): RosterItem {
  const { ask: _ask, ...rest } = i;
  return rest;
}

/** Subscription state after a change, per RFC 6121 Appendix A. */
const addTo = (s: RosterItem["subscription"]) => (s === "from" ? "both" : s === "none" ? "to" : s);
const addFrom = (s: RosterItem["subscription"]) => (s === "to" ? "both" : s === "none" ? "from" : s);
const dropTo = (s: RosterItem["subscription"]) => (s === "both" ? "from" : s === "to" ? "none" : s);
const dropFrom = (s: RosterItem["subscription"]) => (s === "both" ? "to" : s === "from" ? "none" : s);

export default defineModule(
  "presence",
  (module) => {
    const host = module.hostView;

    /** A local account for a JID, if the JID is one of ours. */
    const local = (jid: string | undefined): Account | undefined => {
      const j = tryParseJid(jid);
      const h = j?.local === undefined ? undefined : module.hostViewOf(j.domain);
      return h && j?.local !== undefined ? { host: h, user: j.local, bare: j.bare } : undefined;
    };
    const available = (a: { host: HostView; user: string }) =>
      [...(a.host.sessionsOf(a.user)?.values() ?? [])].filter((s) => s.available);

    function sendTo(sessions: Session[], stanza: Element): void {
      for (const s of sessions) s.send(cloneStanza(stanza));
    }

    /** Changes one roster item (and the pending flag), saves and pushes if anything changed. */
    async function update(
      a: { host: HostView; user: string },
      jid: string,
      change: (item: RosterItem | undefined) => RosterItem | undefined,
      pending?: boolean,
    ): Promise<void> {
      return withRosterLock(a.host, a.user, () => updateNow(a, jid, change, pending));
    }

    async function updateNow(
      a: { host: HostView; user: string },
      jid: string,
      change: (item: RosterItem | undefined) => RosterItem | undefined,
      pending?: boolean,
    ): Promise<void> {
      const roster = await loadRoster(a.host, a.user);
      const key = () => JSON.stringify(roster.items.get(jid) ?? null) + String(roster.meta.pending[jid]);
      const before = key();
      const next = change(roster.items.get(jid));
      if (next) roster.items.set(jid, next);
      if (pending === true) roster.meta.pending[jid] = true;
      if (pending === false) delete roster.meta.pending[jid];
      if (key() === before) return;
      const v = await saveRoster(a.host, a.user, roster);
      if (next) pushRosterItem(a.host, a.user, jid, next, v);
    }

    /** The current presence (or unavailable) of `contact`'s available resources, to `to`. */
    function sendCurrentPresence(contact: { host: HostView; user: string }, to: Session[], unavailable = false): void {
      for (const s of available(contact)) {
        if (to.length === 1 && to[0] === s) continue; // not a session's own presence back to it
        const p = unavailable
          ? xml("presence", { type: "unavailable" })
          : cloneStanza(s.get(PRESENCE) ?? xml("presence"));
        p.attrs.from = s.jid!.full;
        for (const t of to) {
          const copy = cloneStanza(p);
          copy.attrs.to = t.jid!.full;
          t.send(copy);
        }
      }
    }

    // ---- outbound subscription stanzas (from a client of this host) --------------------
    module.hook(
      "pre-presence/bare",
      async ({ origin, stanza }: StanzaEvent) => {
        const type = stanza.attrs.type as string | undefined;
        if (!origin?.jid || !type || !SUBSCRIPTION_TYPES.has(type) || stanza.attrs.to === undefined) return undefined;
        const contact = local(stanza.attrs.to as string);
        if (!contact) return undefined;
        const me = { host, user: origin.jid.local! };
        stanza.attrs.from = origin.jid.bare; // RFC 6121 §3.1.2: subscription presence carries the bare JID
        const jid = contact.bare;
        switch (type) {
          case "subscribe":
            await update(me, jid, (i) => (subscribedTo(i) ? i : { subscription: "none", groups: {}, ...i, ask: "subscribe" }));
            break;
          case "unsubscribe":
            await update(me, jid, (i) => i && { ...strip(i), subscription: dropTo(i.subscription) });
            break;
          case "subscribed":
            if ((await loadRoster(host, me.user)).meta.pending[jid] !== true) return true; // nothing to approve (RFC 6121 §3.1.5)
            await update(me, jid, (i) => {
              const cur = i ?? { subscription: "none" as const, groups: {} };
              return { ...cur, subscription: addFrom(cur.subscription) };
            }, false);
            break;
          case "unsubscribed":
            await update(me, jid, (i) => i && { ...i, subscription: dropFrom(i.subscription) }, false);
            break;
        }
        return undefined; // on to the contact: presence/bare on the contact's host
      },
      1,
    );

    // ---- inbound subscription stanzas and probes (to an account of this host) ------------
    module.hook(
      "presence/bare",
      async ({ stanza }: StanzaEvent) => {
        const type = stanza.attrs.type as string | undefined;
        if (type === "probe") return true; // answered directly at login (sendCurrentPresence)
        if (!type || !SUBSCRIPTION_TYPES.has(type) || stanza.attrs.to === undefined) return undefined;
        const me = local(stanza.attrs.to as string);
        const sender = local(stanza.attrs.from as string | undefined);
        const from = tryParseJid(stanza.attrs.from as string | undefined)?.bare;
        if (!me || !from || !(await host.userExists(me.user))) return true;
        const mine = available(me);
        switch (type) {
          case "subscribe":
            if (sharesPresenceWith((await loadRoster(host, me.user)).items.get(from))) {
              // approved before: answer for the user (RFC 6121 §3.1.3)
              module.send(xml("presence", { type: "subscribed", from: me.bare, to: from }));
              if (sender) sendCurrentPresence(me, available(sender));
              return true;
            }
            await update(me, from, (i) => i, true);
            sendTo(mine, stanza);
            return true;
          case "subscribed": {
            const item = (await loadRoster(host, me.user)).items.get(from);
            if (!item?.ask) return true; // not asked for: ignored
            await update(me, from, (i) => ({ ...strip(i!), subscription: addTo(i!.subscription) }));
            sendTo(mine, stanza);
            if (sender) sendCurrentPresence(sender, mine);
            return true;
          }
          case "unsubscribe":
            await update(me, from, (i) => i && { ...i, subscription: dropFrom(i.subscription) }, false);
            sendTo(mine, stanza);
            if (sender) sendCurrentPresence(me, available(sender), true);
            return true;
          case "unsubscribed":
            await update(me, from, (i) => i && { ...strip(i), subscription: dropTo(i.subscription) });
            sendTo(mine, stanza);
            if (sender) sendCurrentPresence(sender, mine, true);
            return true;
        }
        return undefined;
      },
      1,
    );

    // ---- broadcast ---------------------------------------------------------------------------
    async function broadcast(session: Session, stanza: Element): Promise<void> {
      const user = session.jid!.local!;
      const p = cloneStanza(stanza);
      p.attrs.from = session.jid!.full;
      delete p.attrs.to;
      const targets: Session[] = available({ host, user }).filter((s) => s !== session);
      for (const [jid, item] of (await loadRoster(host, user)).items) {
        if (!sharesPresenceWith(item)) continue;
        const c = local(jid);
        if (c) targets.push(...available(c));
      }
      for (const s of targets) {
        const copy = cloneStanza(p);
        copy.attrs.to = s.jid!.full;
        s.send(copy);
      }
    }

    module.hook("presence-available", async ({ session, stanza }: { session: Session; stanza: Element }) => {
      const first = !session.has(PRESENCE);
      session.set(PRESENCE, cloneStanza(stanza));
      await broadcast(session, stanza);
      if (!first) return undefined;
      const me = { host, user: session.jid!.local!, bare: session.jid!.bare };
      const roster = await loadRoster(host, me.user);
      // what probes would bring: contacts this user is subscribed to, and who share with them
      for (const [jid, item] of roster.items) {
        if (!subscribedTo(item)) continue;
        const c = local(jid);
        if (c && sharesPresenceWith((await loadRoster(c.host, c.user)).items.get(me.bare))) sendCurrentPresence(c, [session]);
      }
      // the account's other resources
      sendCurrentPresence(me, [session]);
      // subscription requests that waited for the user (RFC 6121 §3.1.3)
      for (const jid of Object.keys(roster.meta.pending)) {
        session.send(xml("presence", { type: "subscribe", from: jid, to: me.bare }));
      }
      return undefined;
    });

    const goneUnavailable = (session: Session) => {
      if (!session.has(PRESENCE)) return undefined;
      session.delete(PRESENCE);
      // (resource-unbind is no stanza to wait for: the broadcast goes on by itself)
      broadcast(session, xml("presence", { type: "unavailable" })).catch((err: unknown) =>
        module.log.error({ err }, "could not broadcast unavailable presence"),
      );
      return undefined;
    };
    module.hook("presence-unavailable", ({ session }: { session: Session }) => goneUnavailable(session));
    module.hook("resource-unbind", ({ session }: { session: Session }) => goneUnavailable(session));
  },
  { dependencies: ["roster"] },
);
