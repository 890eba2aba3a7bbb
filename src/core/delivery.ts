// The handlers every host has (Prosody's always-loaded mod_iq, mod_message and
// the routing part of mod_presence). They are ordinary event handlers, so a
// module can run before them with a higher priority, or instead of them by
// returning a value.
//
// RFC 6121 §8.5 message delivery, as Prosody 0.12 does it: to a bare JID,
// chat/normal go to the available resources of the highest non-negative
// priority; headline to every non-negative one; groupchat gets
// service-unavailable; error is dropped. With nobody online the event
// `message/offline/handle` is fired (mam or an offline module takes it);
// unhandled, chat/normal are bounced with service-unavailable.
import type { Element } from "@xmpp/xml";
import type { Host } from "./host.js";
import { isThenable } from "./events.js";
import { cloneStanza, copyMeta, errorReply, iqResult } from "../xmpp/stanza.js";

const NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session";
import type { Session } from "./session.js";
import { localOf } from "../xmpp/jid.js";

export interface StanzaEvent {
  /** The session the stanza came from; `undefined` when the server itself sent it. */
  origin: Session | undefined;
  stanza: Element;
  /** The stanza is addressed to the sender's own account. */
  to_self?: boolean;
}

const CORE = "core";

export function registerCoreHandlers(host: Host): void {
  const ev = host.events;

  // ---- iq: fan out to iq/<to>/<ns>:<name> and iq-<type>/<to>/<ns>:<name> (mod_iq) --------
  const fanOut = (to: "bare" | "self" | "host") => (data: StanzaEvent) => {
    const { stanza } = data;
    const type = stanza.attrs.type as string;
    if (type === "get" || type === "set") {
      const child = firstElement(stanza);
      if (!child) return undefined;
      const tag = `${child.getNS() ?? "jabber:client"}:${child.name}`;
      const ret = ev.fireAsync(`iq/${to}/${tag}`, data);
      const typed = `iq-${type}/${to}/${tag}`;
      if (isThenable(ret)) return Promise.resolve(ret).then((r) => (r !== undefined ? r : ev.fireAsync(typed, data)));
      if (ret !== undefined) return ret;
      return ev.fireAsync(typed, data);
    }
    return ev.fireAsync(`iq-${type}/${to}/${stanza.attrs.id}`, data);
  };
  ev.on("iq/bare", fanOut("bare"), 0, CORE);
  ev.on("iq/self", fanOut("self"), 0, CORE);
  ev.on("iq/host", fanOut("host"), 0, CORE);

  // RFC 3921 session establishment, which older clients still send after binding: a no-op
  // (RFC 6121 dropped it). Answered here, through the session, like any iq.
  const sessionNoop = (data: StanzaEvent) => {
    reply(host, data.origin, iqResult(data.stanza));
    return true;
  };
  ev.on(`iq-set/self/${NS_SESSION}:session`, sessionNoop, -1, CORE);
  ev.on(`iq-set/host/${NS_SESSION}:session`, sessionNoop, -1, CORE);

  ev.on(
    "iq/full",
    (data: StanzaEvent) => {
      const { stanza, origin } = data;
      const session = host.fullSessions.get(stanza.attrs.to);
      if (session) {
        session.send(stanza);
      } else {
        const t = stanza.attrs.type;
        if (t === "get" || t === "set") reply(host, origin, errorReply(stanza, "cancel", "service-unavailable"));
      }
      return true;
    },
    0,
    CORE,
  );

  // ---- messages (mod_message) ---------------------------------------------------------
  ev.on("message/full", (data: StanzaEvent) => {
    const { stanza, origin } = data;
    const session = host.fullSessions.get(stanza.attrs.to);
    if (session) {
      session.send(stanza);
      return true;
    }
    const t = stanza.attrs.type;
    if (t === "groupchat") reply(host, origin, errorReply(stanza, "cancel", "service-unavailable"));
    else if (t !== "headline" && t !== "error") deliverToBare(host, data);
    return true;
  }, -1, CORE);

  ev.on("message/bare", (data: StanzaEvent) => {
    deliverToBare(host, data);
    return true;
  }, -1, CORE);

  // ---- presence: enough for routing (availability and priority) --------------------------
  ev.on("pre-presence/bare", (data: StanzaEvent) => {
    const { stanza, origin } = data;
    if (!origin || stanza.attrs.to !== undefined) return undefined; // directed presence
    const t = stanza.attrs.type;
    if (t === undefined) {
      origin.available = true;
      const p = Number.parseInt(stanza.getChildText("priority") ?? "0", 10);
      origin.priority = Number.isFinite(p) ? Math.max(-128, Math.min(127, p)) : 0;
      return handled(host.events.fireAsync("presence-available", { session: origin, stanza }));
    }
    if (t === "unavailable") {
      origin.available = false;
      return handled(host.events.fireAsync("presence-unavailable", { session: origin, stanza }));
    }
    return undefined;
  }, -1, CORE);

  ev.on("presence/full", (data: StanzaEvent) => {
    host.fullSessions.get(data.stanza.attrs.to)?.send(data.stanza);
    return true;
  }, -1, CORE);

  ev.on("presence/bare", (data: StanzaEvent) => {
    const { stanza } = data;
    if (stanza.attrs.to === undefined) return true;
    const sessions = host.sessionsOf(localOf(stanza.attrs.to) ?? "");
    if (sessions) sendToAll(sessions.values(), stanza, (s) => s.available);
    return true;
  }, -1, CORE);
}

/** The stanza is handled, once the event's (maybe asynchronous) handlers are done. */
function handled(r: unknown): true | Promise<true> {
  return isThenable(r) ? Promise.resolve(r).then(() => true as const) : true;
}

function deliverToBare(host: Host, data: StanzaEvent): void {
  const { stanza, origin } = data;
  const t = stanza.attrs.type as string | undefined;
  if (t === "error") return;
  if (t === "groupchat") {
    reply(host, origin, errorReply(stanza, "cancel", "service-unavailable"));
    return;
  }
  const to = stanza.attrs.to ?? origin?.jid?.bare;
  const sessions = to === undefined ? undefined : host.sessionsOf(localOf(to) ?? "");
  let sent = 0;
  if (sessions) {
    if (t === "headline") {
      sent = sendToAll(sessions.values(), stanza, (s) => s.available && s.priority >= 0);
    } else {
      let top = -1;
      for (const s of sessions.values()) if (s.available && s.priority > top) top = s.priority;
      if (top >= 0) sent = sendToAll(sessions.values(), stanza, (s) => s.available && s.priority === top);
    }
  }
  if (sent > 0 || t === "headline") return;
  if (host.events.fire("message/offline/handle", data) !== undefined) return;
  reply(host, origin, errorReply(stanza, "cancel", "service-unavailable"));
}

/** Sends to every matching session: the first gets the stanza, the others a clone (meta copied). */
function sendToAll(sessions: Iterable<Session>, stanza: Element, pick: (s: Session) => boolean): number {
  let n = 0;
  for (const s of sessions) {
    if (!pick(s)) continue;
    if (n === 0) s.send(stanza);
    else {
      const copy = cloneStanza(stanza);
      copyMeta(stanza, copy);
      s.send(copy);
    }
    n++;
  }
  return n;
}

function firstElement(el: Element): Element | undefined {
  for (const c of el.children) if (typeof c === "object") return c;
  return undefined;
}

/** Sends an error/reply back to where the stanza came from. */
export function reply(host: Host, origin: Session | undefined, stanza: Element): void {
  if (origin && !origin.closed) origin.send(stanza);
  else if (!origin) host.server.routeFromHost(host, stanza);
}

