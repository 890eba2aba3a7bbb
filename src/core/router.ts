// The stanza router (Prosody's core/stanza_router.lua): checks a client's
// stanza, stamps its `from`, and turns it into host events:
//   pre-<kind>/<bare|full|host>  on the sender's host (client stanzas only),
//   <kind>/<bare|full|host>      on the recipient's host,
//   <kind>/self                  if a stanza to the sender's own account is still unhandled,
// then Prosody's defaults for what nobody handled: iq get/set gets
// service-unavailable, iq result/error is dropped.
import type { Element } from "@xmpp/xml";
import { HandlerFailure, isThenable } from "./events.js";
import type { Host } from "./host.js";
import type { Server } from "./server.js";
import { reply, type StanzaEvent } from "./delivery.js";
import { JidError, parseJid } from "../xmpp/jid.js";
import type { Session } from "./session.js";
import { errorReply, errorReplyFrom, isStanza, isStanzaError, NS_CLIENT } from "../xmpp/stanza.js";

type ToType = "bare" | "full" | "host";
const KINDS = ["message", "presence", "iq"] as const;
type Kind = (typeof KINDS)[number];

// Event names precomputed: no string building per stanza.
const EVENTS = Object.fromEntries(
  KINDS.map((k) => [
    k,
    {
      pre: { bare: `pre-${k}/bare`, full: `pre-${k}/full`, host: `pre-${k}/host` },
      main: { bare: `${k}/bare`, full: `${k}/full`, host: `${k}/host` },
      self: `${k}/self`,
    },
  ]),
) as Record<Kind, { pre: Record<ToType, string>; main: Record<ToType, string>; self: string }>;

/** One stanza on its way through the events. */
interface Route {
  originHost: Host;
  origin: Session | undefined;
  stanza: Element;
  data: StanzaEvent;
  kind: Kind;
  toType: ToType;
  domain: string;
  names: { pre: Record<ToType, string>; main: Record<ToType, string>; self: string };
}

const IQ_TYPES = new Set(["get", "set", "result", "error"]);

export class Router {
  constructor(private readonly server: Server) {}

  /**
   * A stanza (or stream-level element) from a bound client session. Returns
   * false for a top-level element that is not a stanza and that no module
   * handles (a stream would answer `unsupported-stanza-type`).
   */
  fromSession(session: Session, stanza: Element): boolean | Promise<boolean> {
    const host = session.host as Host;
    const name = stanza.name;
    const ns = stanza.attrs.xmlns as string | undefined;
    if (!isStanza(stanza)) {
      const ret = host.events.fire(`stanza/${ns ?? NS_CLIENT}:${name}`, { origin: session, stanza });
      if (ret === undefined) {
        session.log.debug({ element: name, xmlns: ns }, "unhandled top-level element");
        return false;
      }
      return true;
    }
    const jid = session.jid;
    if (jid === undefined) {
      if (stanza.attrs.type !== "error" && stanza.attrs.type !== "result") {
        session.send(errorReply(stanza, "auth", "not-authorized", "bind a resource first"));
      }
      return true;
    }
    // RFC 6120 §8.1.2.1: the server stamps the sender's full JID; a forged `from` never survives.
    stanza.attrs.from = jid.full;
    const type = stanza.attrs.type as string | undefined;

    if (name === "iq") {
      const problem = checkIq(stanza, type);
      if (problem !== undefined) {
        if (type !== "error" && type !== "result") session.send(errorReply(stanza, "modify", "bad-request", problem));
        return true;
      }
    }
    const to = stanza.attrs.to as string | undefined;
    if (to !== undefined) {
      try {
        stanza.attrs.to = parseJid(to).full;
      } catch (err) {
        if (!(err instanceof JidError)) throw err;
        if (type !== "error") {
          const r = errorReply(stanza, "modify", "jid-malformed", "the 'to' address is not a valid JID");
          r.attrs.from = host.name;
          session.send(r);
        }
        return true;
      }
    }
    const r = this.post(host, session, stanza, true);
    return r === undefined ? true : r.then(() => true);
  }

  /** A stanza the server itself sends (module.send): no pre- events, `from` defaults to the host. */
  fromHost(host: Host, stanza: Element): void {
    if (stanza.attrs.from === undefined) stanza.attrs.from = host.name;
    const r = this.post(host, undefined, stanza, false);
    r?.catch((err: unknown) => host.log.error({ err }, "error routing a stanza of the server"));
  }

  /** Routes a stanza: undefined once done, or a promise when a handler is asynchronous. */
  private post(originHost: Host, origin: Session | undefined, stanza: Element, preevents: boolean): Promise<void> | undefined {
    const kind = stanza.name as Kind;
    const names = EVENTS[kind];
    if (names === undefined) return;
    const to = stanza.attrs.to as string | undefined;
    let toType: ToType;
    let toSelf = false;
    let domain: string;
    if (to === undefined) {
      toType = "bare";
      toSelf = true;
      domain = originHost.name;
    } else {
      const slash = to.indexOf("/");
      const at = to.indexOf("@");
      const hasLocal = at >= 0 && (slash < 0 || at < slash);
      domain = to.slice(hasLocal ? at + 1 : 0, slash < 0 ? undefined : slash);
      if (!hasLocal) toType = "host";
      else if (slash >= 0) toType = "full";
      else {
        toType = "bare";
        if (origin?.jid !== undefined && origin.jid.bare === to) {
          // as Prosody: a stanza to one's own bare JID loses its `to`
          delete stanza.attrs.to;
          toSelf = true;
        }
      }
    }
    const data: StanzaEvent = { origin, stanza, to_self: toSelf };
    const route: Route = { originHost, origin, stanza, data, kind, toType, domain, names };
    if (preevents) {
      const r = originHost.events.fireAsync(names.pre[toType], data);
      if (isThenable(r)) return Promise.resolve(r).then((v) => this.afterPre(route, v));
      return this.afterPre(route, r);
    }
    return this.toTarget(route);
  }

  private afterPre(route: Route, r: unknown): Promise<void> | undefined {
    if (r === undefined) return this.toTarget(route);
    this.settle(route.originHost, route.origin, route.stanza, r);
    return undefined;
  }

  private toTarget(route: Route): Promise<void> | undefined {
    const { originHost, origin, stanza, data, toType, domain, names } = route;
    const target = this.server.hosts.get(domain);
    if (target === undefined) {
      // no server-to-server yet: every other domain is unreachable
      const t = stanza.attrs.type;
      if (t !== "error" && t !== "result") {
        reply(originHost, origin, errorReply(stanza, "cancel", "remote-server-not-found"));
      }
      return;
    }
    const r = target.events.fireAsync(names.main[toType], data);
    if (isThenable(r)) return Promise.resolve(r).then((v) => this.afterMain(route, target, v));
    return this.afterMain(route, target, r);
  }

  private afterMain(route: Route, target: Host, r: unknown): Promise<void> | undefined {
    if (r === undefined && route.data.to_self) {
      const s = target.events.fireAsync(route.names.self, route.data);
      if (isThenable(s)) return Promise.resolve(s).then((v) => this.afterSelf(route, target, v));
      r = s;
    }
    this.afterSelf(route, target, r);
    return undefined;
  }

  private afterSelf(route: Route, target: Host, r: unknown): undefined {
    const { origin, stanza, kind, toType } = route;
    if (r !== undefined) {
      this.settle(target, origin, stanza, r);
      return undefined;
    }
    // Nobody handled it (Prosody's handle_unhandled_stanza).
    const t = stanza.attrs.type;
    if (kind === "iq" && (t === "get" || t === "set")) {
      reply(target, origin, errorReply(stanza, "cancel", "service-unavailable"));
    } else if (kind === "message" && toType === "host" && (t === undefined || t === "normal" || t === "chat")) {
      reply(target, origin, errorReply(stanza, "cancel", "service-unavailable"));
    }
    return undefined;
  }

  /** A handler took the stanza; turn a failure into the error reply the client is owed. */
  private settle(host: Host, origin: Session | undefined, stanza: Element, r: unknown): void {
    if (r instanceof HandlerFailure) this.failed(host, origin, stanza, r.error);
  }

  private failed(host: Host, origin: Session | undefined, stanza: Element, err: unknown): void {
    const t = stanza.attrs.type;
    if (t === "error" || t === "result") return;
    if (isStanzaError(err)) {
      reply(host, origin, errorReplyFrom(stanza, err));
    } else if (stanza.name === "iq") {
      reply(host, origin, errorReply(stanza, "cancel", "internal-server-error"));
    }
  }
}

/** RFC 6120 §8.2.3: iq has an id, a known type, and get/set carry exactly one child. */
function checkIq(stanza: Element, type: string | undefined): string | undefined {
  if (type === undefined || !IQ_TYPES.has(type)) return "iq type must be get, set, result or error";
  if (stanza.attrs.id === undefined || stanza.attrs.id === "") return "iq needs an id";
  if (type === "get" || type === "set") {
    let n = 0;
    for (const c of stanza.children) if (typeof c === "object") n++;
    if (n !== 1) return "iq get/set carries exactly one child element";
  }
  return undefined;
}
