// One client connection (RFC 6120 stream, or RFC 7395 WebSocket framing):
// framing, stream open and close, stream features (which modules add through
// Prosody's `stream-features` event), STARTTLS, output and liveness. What a
// stream does to authenticate and bind, modules do through the session's
// StreamControl (see src/auth/); once bound, everything goes to the Session,
// which knows nothing of sockets. This file knows no module.
import { randomBytes } from "node:crypto";
import { type Element, xml } from "@xmpp/xml";
import type { Host } from "../core/host.js";
import type { Logger } from "../core/logger.js";
import type { Server } from "../core/server.js";
import { NS_STREAMS, type Session, type SessionSink, type StreamControl } from "../core/session.js";
import { parseJid } from "../xmpp/jid.js";
import { isStanza, NS_CLIENT } from "../xmpp/stanza.js";
import { Liveness } from "./liveness.js";
import { type C2sSettings, type C2sTransport, noWayToAuthenticate } from "./transport.js";
import { parseFrame, XmlFrameError, XmlStreamParser } from "./xml-stream.js";

export const NS_STREAM = "http://etherx.jabber.org/streams";
export const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
export const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";

export class C2sConnection implements SessionSink {
  private readonly parser: XmlStreamParser | undefined;
  private host: Host | undefined;
  session: Session | undefined;
  private headerSent = false;
  private streamId = "";
  /** The stream is authenticated (no STARTTLS can follow). Set through the stream control only. */
  authenticated = false;
  private closed = false;
  /** Output held back (StreamControl.holdOutput), in order. */
  private held: Element[] | undefined;
  private readonly control: StreamControl;
  private readonly liveness: Liveness;

  constructor(
    private readonly server: Server,
    readonly transport: C2sTransport,
    private readonly settings: C2sSettings,
  ) {
    if (transport.kind === "tcp") {
      this.parser = new XmlStreamParser(settings.maxStanzaSize, {
        onStart: (h) => this.onStreamStart(h.attrs as Record<string, string>, h.name),
        onElement: (el) => this.onElement(el),
        onEnd: () => this.onStreamEnd(),
        onError: (c, t) => this.streamError(c, t),
        onDiscarded: (rest) => this.afterStartTls(rest),
      });
    }
    this.control = this.streamControl();
    const seconds = (name: string, def: number) => Number(server.config.global[name] ?? def) * 1000;
    this.liveness = new Liveness(seconds("c2s_timeout", 300), seconds("c2s_read_timeout", 840), {
      closed: () => this.closed,
      authenticated: () => this.authenticated,
      authTimedOut: () => this.streamError("connection-timeout", "no authentication in time"),
      probe: () => this.probe(),
      dead: () => this.dropSilentPeer(),
    });
  }

  /** What the modules that authenticate and bind this stream may see and do. */
  private streamControl(): StreamControl {
    const conn = this;
    return {
      get kind() {
        return conn.transport.kind;
      },
      get secure() {
        return conn.transport.secure;
      },
      get remoteAddress() {
        return conn.transport.remoteAddress;
      },
      get authenticated() {
        return conn.authenticated;
      },
      get closed() {
        return conn.closed;
      },
      markAuthenticated: () => {
        this.authenticated = true;
      },
      restartStream: () => {
        this.parser?.restart();
        this.headerSent = false;
      },
      sendFeatures: () => this.write(this.features().toString()),
      holdOutput: () => {
        this.held ??= [];
      },
      releaseOutput: () => {
        const out = this.held ?? [];
        this.held = undefined;
        return out;
      },
      writeTogether: (elements) => {
        if (this.closed || elements.length === 0) return;
        const parts = elements.map((el) => this.serialize(el));
        if (this.transport.kind === "websocket") for (const p of parts) this.write(p);
        else this.write(parts.join(""));
      },
      streamError: (condition, text) => this.streamError(condition, text),
      carry: (session) => {
        this.session = session;
        session.stream = this.control; // what authenticates here now answers on this stream
      },
    };
  }

  private logCache: { owner: Session | undefined; log: Logger } | undefined;

  /** A child logger, built once per session the connection carries (not per call). */
  private get log(): Logger {
    const owner = this.session;
    let cache = this.logCache;
    if (cache?.owner !== owner || cache === undefined) {
      cache = { owner, log: (owner?.log ?? this.server.log).child({ c2s: this.transport.kind, addr: this.transport.remoteAddress }) };
      this.logCache = cache;
    }
    return cache.log;
  }

  // ---- input ---------------------------------------------------------------------------

  /** TCP: a chunk of the stream. */
  onData(data: string): void {
    if (this.closed) return;
    this.liveness.input();
    this.parser!.write(data);
  }

  /** WebSocket: one framed element (RFC 7395 §3.3). */
  onMessage(text: string): void {
    if (this.closed) return;
    this.liveness.input();
    if (Buffer.byteLength(text, "utf8") > this.settings.maxStanzaSize) {
      this.streamError("policy-violation", `stanza larger than ${this.settings.maxStanzaSize} bytes`);
      return;
    }
    let el: Element;
    try {
      el = parseFrame(text);
    } catch (err) {
      if (!(err instanceof XmlFrameError)) throw err;
      this.streamError(err.condition, err.message);
      return;
    }
    if (el.name === "open" && el.attrs.xmlns === NS_FRAMING) this.onStreamStart(el.attrs as Record<string, string>);
    else if (el.name === "close" && el.attrs.xmlns === NS_FRAMING) this.onStreamEnd();
    else this.onElement(el);
  }

  /** The transport is gone (socket closed or errored). */
  onTransportClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.liveness.stop();
    if (this.ownsSession()) this.session!.transportLost("connection closed");
  }

  /** Is this connection (still) the one the session writes to? After a resumption elsewhere it is not. */
  private ownsSession(): boolean {
    const s = this.session;
    if (!s || s.closed) return false;
    const out = s.output as SessionSink & { transport?: unknown };
    return out === this || out.transport === this;
  }

  private onStreamStart(attrs: Record<string, string>, name = "stream:stream"): void {
    const ws = this.transport.kind === "websocket";
    let host: Host | undefined;
    try {
      host = attrs.to ? this.server.hosts.get(parseJid(attrs.to).domain) : undefined;
    } catch {
      host = undefined;
    }
    if (this.host && host !== this.host) host = undefined; // a restart may not change the host
    if (!host) {
      this.host ??= this.server.hosts.values().next().value;
      this.streamError("host-unknown", "this server does not serve that domain");
      return;
    }
    this.host = host;
    // the element must be <stream> in the streams namespace, under whatever prefix declares it
    const colon = name.indexOf(":");
    const streamNs = colon < 0 ? attrs.xmlns : attrs[`xmlns:${name.slice(0, colon)}`];
    if (!ws && (attrs.xmlns !== NS_CLIENT || name.slice(colon + 1) !== "stream" || streamNs !== NS_STREAM)) {
      this.streamError("invalid-namespace", "expected jabber:client and http://etherx.jabber.org/streams");
      return;
    }
    if (attrs.version !== "1.0") {
      this.streamError("unsupported-version", "only XMPP 1.0 is supported");
      return;
    }
    this.sendHeader();
    if (!this.session) {
      this.session = host.openUnboundSession(this, { username: "" });
      this.session.stream = this.control;
    }
    this.session.authUser = this.authenticated ? this.session.authUser : undefined;
    const features = this.features();
    if (!this.authenticated && features.children.length === 0) this.streamError("policy-violation", noWayToAuthenticate(this.transport));
    else this.write(features.toString());
  }

  private sendHeader(): void {
    this.streamId = randomBytes(12).toString("base64url");
    const from = this.host?.name ?? "";
    if (this.transport.kind === "websocket") {
      this.write(xml("open", { xmlns: NS_FRAMING, from, id: this.streamId, version: "1.0", "xml:lang": "en" }).toString());
    } else {
      this.write(
        `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAM}' id='${this.streamId}' from='${from}' version='1.0' xml:lang='en'>`,
      );
    }
    this.headerSent = true;
  }

  private onStreamEnd(): void {
    // the client closed its stream: a graceful end, never hibernation (XEP-0198 §5)
    this.finish(undefined);
  }

  private features(): Element {
    const host = this.host!;
    const f = xml("stream:features", this.transport.kind === "websocket" ? { "xmlns:stream": NS_STREAM } : {});
    if (!this.authenticated && !this.transport.secure && this.transport.canStartTls(host.name)) {
      const tls = f.c("starttls", { xmlns: NS_TLS });
      if (host.option("c2s_require_encryption") !== false) tls.c("required");
    }
    // the rest is the modules' (Prosody's `stream-features` event): authentication,
    // binding and whatever else they offer
    host.events.fire("stream-features", { origin: this.session, features: f });
    return f;
  }

  private onElement(el: Element): void {
    const session = this.session;
    if (!this.headerSent || !session) {
      this.streamError("not-authorized", "open the stream first");
      return;
    }
    if (el.attrs.xmlns === NS_TLS && el.name === "starttls") return void this.startTls();
    if (!this.authenticated) {
      // Only what authenticates, and only modules that expect an unauthenticated stream
      // see it: `stanza-unauthenticated/<ns>:<name>` (the SASL modules hook theirs), never the
      // router's `stanza/…` events. A stanza is not processed.
      const ns = (el.attrs.xmlns as string | undefined) ?? NS_CLIENT;
      const handled = !isStanza(el) && this.host!.events.fire(`stanza-unauthenticated/${ns}:${el.name}`, { origin: session, stanza: el });
      if (handled === false || handled === undefined) this.streamError("not-authorized", "authenticate first");
      return;
    }
    if (!session.jid && isStanza(el)) {
      // RFC 6120 §4.9.3.12: before binding only binding (a module's); any other stanza is
      // a stream error, and what it asked for is not done
      if (this.host!.events.fire("stanza-before-bind", { origin: session, stanza: el }) === undefined) {
        this.streamError("not-authorized", "bind a resource first");
      }
      return;
    }
    // A top-level element that is no stanza and that no module handles ends the stream,
    // as RFC 6120 §4.9.3.24 and Prosody do.
    if (!session.receive(el)) this.streamError("unsupported-stanza-type", `<${el.name}/> in ${el.attrs.xmlns || "no namespace"} is not handled here`);
  }

  // ---- STARTTLS ------------------------------------------------------------------------
  private async startTls(): Promise<void> {
    const host = this.host!;
    if (this.transport.secure || this.authenticated || !this.transport.canStartTls(host.name) || !this.transport.startTls) {
      this.write(xml("failure", { xmlns: NS_TLS }).toString());
      this.finish(undefined);
      return;
    }
    this.write(xml("proceed", { xmlns: NS_TLS }).toString());
    // RFC 6120 §5.4.3.3: nothing the client sent before TLS took effect may reach the new stream
    this.parser!.restart("discard");
    this.headerSent = false;
    try {
      await this.transport.startTls(host.name);
    } catch (err) {
      this.log.info({ err }, "TLS handshake failed");
      this.closed = true;
      this.transport.end();
    }
  }

  /** What the read holding <starttls/> carried after it: whitespace is harmless, anything else an injection attempt. */
  private afterStartTls(rest: string): void {
    if (!/\S/.test(rest)) return;
    this.log.warn({ bytes: rest.length }, "data sent in plaintext after <starttls/>: connection closed");
    this.closed = true;
    this.liveness.stop();
    this.transport.abort();
    if (this.ownsSession()) this.session!.close("plaintext after starttls");
  }

  // ---- output (SessionSink) --------------------------------------------------------------
  deliver(stanza: Element, session: Session): void {
    this.session = session; // after a resumption, the resumed session writes here
    if (this.held) this.held.push(stanza);
    else this.deliverStanza(stanza);
  }

  private deliverStanza(stanza: Element): void {
    if (!this.closed) this.write(this.serialize(stanza));
  }

  /** WebSocket frames carry the stanza namespace themselves (RFC 7395 §3.3.3). */
  private serialize(stanza: Element): string {
    if (this.transport.kind !== "websocket" || stanza.attrs.xmlns !== undefined) return stanza.toString();
    stanza.attrs.xmlns = NS_CLIENT;
    const text = stanza.toString();
    delete stanza.attrs.xmlns;
    return text;
  }

  deliverNonza(el: Element, session: Session): void {
    if (!session.closed) this.session = session;
    if (el.name === "stream:error") {
      this.streamError(el);
      return;
    }
    if (this.held) this.held.push(el);
    else this.write(el.toString());
  }

  close(reason: string | undefined): void {
    // reasons that are stream errors go out as such: `conflict` when a new session took this
    // full JID (RFC 6120 §7.7.2.2), `system-shutdown` at the end, `connection-timeout` for
    // a silent peer
    this.finish(reason === "system-shutdown" || reason === "conflict" || reason === "connection-timeout" ? reason : undefined);
  }

  /** Sends a stream error (RFC 6120 §4.9) and closes the stream. */
  streamError(condition: string | Element, text?: string): void {
    if (this.closed) return;
    if (!this.headerSent) this.sendHeader();
    let err: Element;
    if (typeof condition === "string") {
      err = xml("stream:error", {}, xml(condition, { xmlns: NS_STREAMS }));
      if (text) err.c("text", { xmlns: NS_STREAMS }).t(text);
      this.log.info({ condition, text }, "stream error");
    } else err = condition;
    if (this.transport.kind === "websocket") err.attrs["xmlns:stream"] = NS_STREAM;
    this.write(err.toString());
    this.finish(undefined, true);
  }

  private finish(errorCondition: string | undefined, errorSent = false): void {
    if (this.closed) return;
    if (errorCondition && !errorSent) {
      this.streamError(errorCondition);
      return;
    }
    this.closed = true;
    this.liveness.stop();
    if (this.headerSent) this.write(this.transport.kind === "websocket" ? xml("close", { xmlns: NS_FRAMING }).toString() : "</stream:stream>", true);
    this.transport.end();
    if (this.ownsSession()) this.session!.close(errorCondition ?? "stream closed");
  }

  private write(data: string, evenIfClosed = false): void {
    if (this.closed && !evenIfClosed) return;
    this.transport.write(data);
  }

  // ---- liveness (see liveness.ts) -------------------------------------------------------
  /** Returns true when the probe sent needs an answer (from a module, or a WebSocket pong). */
  private probe(): boolean {
    const session = this.ownsSession() ? this.session : undefined;
    if (session && this.host?.events.fire("c2s-read-timeout", { session }) === true) return true;
    // nothing before our stream header: a space there would put its XML declaration off the start
    if (!this.headerSent) return false;
    return this.transport.keepalive();
  }

  /** The transport saw the peer alive without data (a WebSocket pong). */
  onActivity(): void {
    this.liveness.input();
  }

  private dropSilentPeer(): void {
    this.log.info("no answer to the keepalive: the peer is taken for dead");
    const session = this.ownsSession() ? this.session : undefined;
    if (!session?.jid) {
      this.streamError("connection-timeout", "no answer to the keepalive");
      return;
    }
    // stream management keeps the session (hibernation); without it the session
    // closes, and close() sends the stream error
    session.transportLost("connection-timeout");
    if (!session.hibernating || this.closed) return;
    this.closed = true;
    this.liveness.stop();
    this.transport.abort();
  }
}
