// One client connection (RFC 6120 stream, or RFC 7395 WebSocket framing):
// stream open and features, STARTTLS, SASL (PLAIN, SCRAM-SHA-1/-256), SASL2
// (XEP-0388) with Bind 2 (XEP-0386) and inline stream management, legacy
// resource binding, stream errors and timeouts. Once bound, everything goes
// to the Session, which knows nothing of sockets.
import { randomBytes } from "node:crypto";
import { type Element, xml } from "@xmpp/xml";
import type { Host } from "../core/host.js";
import type { Server } from "../core/server.js";
import { Accounts } from "../auth/accounts.js";
import { SCRAM_MECHANISMS, ScramServer, type ScramStep } from "../auth/scram.js";
import { parseJid } from "../xmpp/jid.js";
import { isClientId, NS_STREAMS, type Session, type SessionSink } from "../core/session.js";
import { errorReply, iqResult, NS_CLIENT } from "../xmpp/stanza.js";
import { parseFrame, XmlFrameError, XmlStreamParser } from "./xml-stream.js";
import type { FailureTracker } from "./failures.js";

export const NS_STREAM = "http://etherx.jabber.org/streams";
export const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
export const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";
export const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
export const NS_SASL2 = "urn:xmpp:sasl:2";
export const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
export const NS_BIND2 = "urn:xmpp:bind:0";
export const NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session";
const NS_SM = "urn:xmpp:sm:3";
/** Failed SASL attempts allowed after the first on one stream (RFC 6120 §6.4.5: 2 to 5). */
export const DEFAULT_SASL_RETRIES = 3;
const NS_CARBONS = "urn:xmpp:carbons:2";

function isStanza(el: Element): boolean {
  const ns = el.attrs.xmlns as string | undefined;
  return (el.name === "message" || el.name === "presence" || el.name === "iq") && (ns === undefined || ns === NS_CLIENT);
}

/** The byte pipe under a connection. */
export interface C2sTransport {
  readonly kind: "tcp" | "websocket";
  readonly remoteAddress: string;
  readonly secure: boolean;
  /** TLS is possible on this connection for this host (TCP with a certificate). */
  canStartTls(host: string): boolean;
  startTls?(host: string): Promise<void>;
  write(data: string): void;
  /** Closes after what was written is sent. */
  end(): void;
  /** Closes at once, dropping what is not sent yet. */
  abort(): void;
  /**
   * Sends the transport's own keepalive (TCP: a space; WebSocket: a ping frame).
   * Returns true when the peer must answer it (a WebSocket pong), which then
   * comes in as `onActivity()`.
   */
  keepalive(): boolean;
}

export interface C2sSettings {
  maxStanzaSize: number;
  failures: FailureTracker;
}

type SaslState = {
  sasl2: boolean;
  mechanism: string;
  scram?: ScramServer;
  /** SASL2: the <authenticate/> element, for its inline requests. */
  request?: Element;
  clientId?: string;
};

export class C2sConnection implements SessionSink {
  private readonly parser: XmlStreamParser | undefined;
  private host: Host | undefined;
  session: Session | undefined;
  private headerSent = false;
  private streamId = "";
  private authenticated = false;
  private closed = false;
  private sasl: SaslState | undefined;
  private capture: { nonzas: Element[]; stanzas: Element[] } | undefined;
  private saslBusy = false;
  private saslFailures = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastRead = Date.now();
  /** Reads so far (a probe is answered by any input after it). */
  private reads = 0;

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
    this.armTimer();
  }

  private get log() {
    return (this.session?.log ?? this.server.log).child({ c2s: this.transport.kind, addr: this.transport.remoteAddress });
  }

  // ---- input ---------------------------------------------------------------------------

  /** TCP: a chunk of the stream. */
  onData(data: string): void {
    if (this.closed) return;
    this.lastRead = Date.now();
    this.reads++;
    this.parser!.write(data);
  }

  /** WebSocket: one framed element (RFC 7395 §3.3). */
  onMessage(text: string): void {
    if (this.closed) return;
    this.lastRead = Date.now();
    this.reads++;
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
    clearTimeout(this.timer);
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
    if (!this.session) this.session = host.openUnboundSession(this, { username: "" });
    this.session.authUser = this.authenticated ? this.session.authUser : undefined;
    this.write(this.features().toString());
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

  private option<T>(name: string, def: T): T {
    const v = this.host?.option(name);
    return v === undefined ? def : (v as T);
  }

  private mechanisms(): string[] {
    const secure = this.transport.secure;
    // SCRAM-SHA-256 only where every account can answer it (Prosody 0.12's have SHA-1 keys only)
    const sha256 = this.host === undefined || new Accounts(this.host).sha256ForAll();
    const out = Object.keys(SCRAM_MECHANISMS).filter((m) => sha256 || SCRAM_MECHANISMS[m] !== "sha256");
    if (secure || this.option("allow_unencrypted_plain_auth", false)) out.push("PLAIN");
    return out;
  }

  private mayAuthenticate(): boolean {
    return this.transport.secure || !this.option("c2s_require_encryption", true);
  }

  private features(): Element {
    const host = this.host!;
    const f = xml("stream:features", this.transport.kind === "websocket" ? { "xmlns:stream": NS_STREAM } : {});
    if (!this.authenticated) {
      if (!this.transport.secure && this.transport.canStartTls(host.name)) {
        const tls = f.c("starttls", { xmlns: NS_TLS });
        if (this.option("c2s_require_encryption", true)) tls.c("required");
      }
      if (this.mayAuthenticate()) {
        const mechs = this.mechanisms();
        if (host.isLoaded("saslauth")) {
          const m = f.c("mechanisms", { xmlns: NS_SASL });
          for (const name of mechs) m.c("mechanism").t(name);
        }
        if (host.isLoaded("sasl2")) {
          const a = f.c("authentication", { xmlns: NS_SASL2 });
          for (const name of mechs) a.c("mechanism").t(name);
          const inline = a.c("inline");
          if (host.isLoaded("smacks")) inline.c("sm", { xmlns: NS_SM });
          if (host.isLoaded("bind2")) {
            const b = inline.c("bind", { xmlns: NS_BIND2 }).c("inline");
            if (host.isLoaded("smacks")) b.c("feature", { var: NS_SM });
            if (host.isLoaded("carbons")) b.c("feature", { var: NS_CARBONS });
          }
        }
      }
    } else if (!this.session?.jid) {
      f.c("bind", { xmlns: NS_BIND });
      f.c("session", { xmlns: NS_SESSION }).c("optional");
      if (host.isLoaded("smacks")) f.c("sm", { xmlns: NS_SM });
    }
    // modules add their own (Prosody's `stream-features` event: roster versioning, …)
    host.events.fire("stream-features", { origin: this.session, features: f });
    return f;
  }

  private onElement(el: Element): void {
    if (!this.headerSent || !this.session) {
      this.streamError("not-authorized", "open the stream first");
      return;
    }
    const ns = el.attrs.xmlns as string | undefined;
    if (ns === NS_TLS && el.name === "starttls") return void this.startTls();
    if (ns === NS_SASL || ns === NS_SASL2) {
      // one SASL element at a time: a second one before the answer to the first (whose
      // password check is asynchronous) would race it, up to a double success
      if (this.saslBusy) return void this.streamError("policy-violation", "wait for the answer to the previous SASL element");
      this.saslBusy = true;
      void this.onSasl(el, ns === NS_SASL2).finally(() => {
        this.saslBusy = false;
      });
      return;
    }
    if (!this.authenticated) {
      this.streamError("not-authorized", "authenticate first");
      return;
    }
    if (!this.session.jid && isStanza(el)) {
      const bind = el.name === "iq" ? el.getChild("bind", NS_BIND) : undefined;
      if (bind && el.attrs.type === "set") return void this.legacyBind(el, bind);
      if (el.name === "iq" && el.getChild("session", NS_SESSION)) {
        this.deliverStanza(iqResult(el));
        return;
      }
      // RFC 6120 §4.9.3.12: a stanza before the stream is ready for it is a stream error,
      // and what it asked for is not done
      this.streamError("not-authorized", "bind a resource first");
      return;
    }
    // (after binding, the RFC 3921 session iq goes through the session like any stanza, so that
    // stream management counts it both ways; the core answers it: see registerCoreHandlers)
    // A top-level element that is no stanza and that no module handles ends the stream,
    // as RFC 6120 §4.9.3.24 and Prosody do.
    if (!this.session.receive(el)) this.streamError("unsupported-stanza-type", `<${el.name}/> in ${el.attrs.xmlns || "no namespace"} is not handled here`);
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
    clearTimeout(this.timer);
    this.transport.abort();
    if (this.ownsSession()) this.session!.close("plaintext after starttls");
  }

  // ---- SASL and SASL2 --------------------------------------------------------------------
  private async onSasl(el: Element, sasl2: boolean): Promise<void> {
    const host = this.host!;
    const start = sasl2 ? "authenticate" : "auth";
    if (el.name === "abort") {
      this.sasl = undefined;
      this.saslFailure(sasl2, "aborted");
      return;
    }
    if (this.authenticated || !host.isLoaded(sasl2 ? "sasl2" : "saslauth")) {
      this.streamError("policy-violation", "authentication is not available now");
      return;
    }
    if (el.name === start) {
      if (!this.mayAuthenticate()) {
        this.saslFailure(sasl2, "encryption-required", "use STARTTLS first");
        return;
      }
      const mechanism = el.attrs.mechanism as string;
      if (!this.mechanisms().includes(mechanism)) {
        this.saslFailure(sasl2, mechanism === "PLAIN" ? "encryption-required" : "invalid-mechanism");
        return;
      }
      const state: SaslState = { sasl2, mechanism };
      if (sasl2) {
        state.request = el;
        const ua = el.getChild("user-agent");
        if (ua) {
          const id = ua.attrs.id as string | undefined;
          if (id !== undefined && !isClientId(id)) {
            this.saslFailure(true, "malformed-request", "the user-agent id must be a UUID");
            return;
          }
          if (id !== undefined) state.clientId = id.toLowerCase();
        }
      }
      const hash = SCRAM_MECHANISMS[mechanism];
      if (hash) {
        const accounts = new Accounts(host);
        state.scram = new ScramServer(hash, (user) => {
          const local = this.nodeprep(user);
          return local === undefined ? undefined : accounts.credentials(local, hash);
        });
      }
      this.sasl = state;
      const initial = sasl2 ? el.getChildText("initial-response") : el.getText();
      if (initial === null || initial === undefined || (!sasl2 && initial === "")) {
        if (state.scram || initial === null || initial === undefined) {
          this.challenge("");
          return;
        }
      }
      await this.saslStep(initial === "=" ? "" : (initial ?? ""));
      return;
    }
    if (el.name === "response") {
      if (!this.sasl) {
        this.saslFailure(sasl2, "malformed-request", "no authentication in progress");
        return;
      }
      await this.saslStep(el.getText());
      return;
    }
    this.streamError("unsupported-stanza-type", `unexpected <${el.name}/>`);
  }

  private nodeprep(user: string): string | undefined {
    try {
      const j = parseJid(`${user}@${this.host!.name}`);
      return j.local;
    } catch {
      return undefined;
    }
  }

  private async saslStep(b64: string): Promise<void> {
    const st = this.sasl!;
    let message: string;
    try {
      message = Buffer.from(b64.trim(), "base64").toString("utf8");
      if (b64.trim() !== "" && Buffer.from(message, "utf8").toString("base64").replace(/=+$/, "") !== b64.trim().replace(/=+$/, "")) {
        throw new Error("bad base64");
      }
    } catch {
      this.saslFailure(st.sasl2, "incorrect-encoding");
      return;
    }
    if (st.scram) {
      const step: ScramStep = st.scram.step(message);
      if (step.kind === "challenge") this.challenge(Buffer.from(step.data).toString("base64"));
      else if (step.kind === "failure") await this.authFailed(st, step.condition, step.text, st.scram.user);
      else await this.authSucceeded(st, step.username, Buffer.from(step.data).toString("base64"));
      return;
    }
    // PLAIN (RFC 4616): authzid NUL authcid NUL passwd
    const parts = message.split("\u0000");
    if (parts.length !== 3 || parts[1] === "" || parts[2] === "") {
      this.saslFailure(st.sasl2, "malformed-request");
      return;
    }
    const [authzid, authcid, password] = parts as [string, string, string];
    const user = this.nodeprep(authcid);
    if (authzid !== "" && authzid !== authcid && authzid !== `${user}@${this.host!.name}`) {
      this.saslFailure(st.sasl2, "invalid-authzid");
      return;
    }
    const ok = user !== undefined && (await new Accounts(this.host!).verify(user, password));
    if (this.closed) return;
    if (ok) await this.authSucceeded(st, user!, undefined);
    else await this.authFailed(st, "not-authorized", undefined, user ?? authcid);
  }

  private challenge(b64: string): void {
    const ns = this.sasl!.sasl2 ? NS_SASL2 : NS_SASL;
    this.write(xml("challenge", { xmlns: ns }, b64).toString());
  }

  /**
   * Answers a failed SASL exchange. RFC 6120 §6.4.5: a few retries are allowed on one
   * stream (`sasl_max_retries`, 2 to 5); the failure past them ends the stream with
   * `policy-violation`, after its own <failure/>. An abort is no failed attempt.
   */
  private saslFailure(sasl2: boolean, condition: string, text?: string): void {
    this.sasl = undefined;
    const f = xml("failure", { xmlns: sasl2 ? NS_SASL2 : NS_SASL }, xml(condition, { xmlns: NS_SASL }));
    if (text) f.c("text").t(text);
    this.write(f.toString());
    if (condition === "aborted") return;
    this.saslFailures++;
    if (this.saslFailures > this.option("sasl_max_retries", DEFAULT_SASL_RETRIES)) {
      this.streamError("policy-violation", "too many failed authentication attempts");
    }
  }

  private async authFailed(st: SaslState, condition: string, text: string | undefined, user: string | undefined): Promise<void> {
    const key = user ?? "";
    const delay = this.settings.failures.failed(this.host!.name, key, this.transport.remoteAddress);
    this.log.info({ user: key, delayMs: delay }, "authentication failed");
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    if (this.closed) return;
    this.saslFailure(st.sasl2, condition, text);
  }

  private async authSucceeded(st: SaslState, user: string, additional: string | undefined): Promise<void> {
    const host = this.host!;
    if (!host.userExists(user)) {
      await this.authFailed(st, "not-authorized", undefined, user);
      return;
    }
    this.settings.failures.succeeded(host.name, user, this.transport.remoteAddress);
    this.sasl = undefined;
    this.authenticated = true;
    const session = this.session!;
    session.authUser = user;
    if (st.clientId !== undefined) session.clientId = st.clientId;
    this.log.info({ user, mechanism: st.mechanism, sasl2: st.sasl2 }, "authenticated");
    if (!st.sasl2) {
      this.write(xml("success", { xmlns: NS_SASL }, additional ?? "").toString());
      this.parser?.restart(); // RFC 6120 §6.4.6: the stream restarts
      this.headerSent = false;
      return;
    }
    // SASL2: inline resumption or Bind 2, inside <success/>; no stream restart
    const success = xml("success", { xmlns: NS_SASL2 });
    if (additional) success.c("additional-data").t(additional);
    const req = st.request!;
    this.capture = { nonzas: [], stanzas: [] };
    let resumed = false;
    const resume = req.getChild("resume", NS_SM);
    if (resume && host.isLoaded("smacks")) {
      session.receive(resume);
      const answer = this.capture.nonzas.find((n) => n.name === "resumed" || n.name === "failed");
      if (answer) success.cnode(answer);
      resumed = answer?.name === "resumed";
    }
    const bindReq = req.getChild("bind", NS_BIND2);
    let bound: Element | undefined;
    if (!resumed && bindReq && host.isLoaded("bind2")) {
      const tag = bindReq.getChildText("tag");
      const resource = `${(tag ?? "mamkit").replace(/[^\w.-]/g, "").slice(0, 32) || "mamkit"}-${randomBytes(4).toString("hex")}`;
      host.bind(session, user, resource);
      bound = xml("bound", { xmlns: NS_BIND2 });
      const smEnable = bindReq.getChild("enable", NS_SM);
      if (smEnable && host.isLoaded("smacks")) {
        // What binding sent (resource-bind hooks) goes out after <success/>, where the client
        // already counts stanzas: once stream management is on, pass it through its queue
        // (already filtered: to the output, not send()), so that both sides count the same.
        const beforeEnable = this.capture.stanzas.splice(0);
        this.capture.nonzas.length = 0;
        session.receive(smEnable);
        const enabled = this.capture.nonzas.some((n) => n.name === "enabled");
        for (const n of this.capture.nonzas) if (n.name === "enabled" || n.name === "failed") bound.cnode(n);
        // (after anything enabling sent, so that the wire order is the queue's order)
        for (const st of beforeEnable) {
          if (enabled) session.output.deliver(st, session);
          else this.capture.stanzas.push(st);
        }
      }
      if (bindReq.getChild("enable", NS_CARBONS) && host.isLoaded("carbons")) session.data.set("carbons", true);
    }
    const current = this.session!;
    success.c("authorization-identifier").t(current.jid?.full ?? `${user}@${host.name}`);
    if (bound) success.cnode(bound);
    const held = this.capture;
    this.capture = undefined;
    // <success/> and the stanzas a resumption sends again go out in one write on TCP:
    // COMPAT: @xmpp/client 0.14 handles <success/> asynchronously and replaces
    // its parser meanwhile, so stanzas arriving in a later TCP/TLS read after
    // it are misparsed (seen with a 2-record write). One write keeps them in
    // the chunk it parses synchronously, as Prosody's buffered writes do.
    // On WebSocket every element is its own message (RFC 7395 §3.3.3): a client
    // reading one element per frame would otherwise miss the stanzas, and its
    // acks would then count them as handled.
    const parts = [success.toString(), ...held.stanzas.map((st) => this.serialize(st))];
    if (this.transport.kind === "websocket") for (const p of parts) this.write(p);
    else this.write(parts.join(""));
    if (!current.jid) this.write(this.features().toString());
  }

  // ---- legacy resource binding (RFC 6120 §7) ---------------------------------------------
  private legacyBind(iq: Element, bind: Element): void {
    const host = this.host!;
    const session = this.session!;
    const requested = bind.getChildText("resource")?.trim();
    const resource = requested || `mamkit-${randomBytes(4).toString("hex")}`;
    try {
      host.bind(session, session.authUser!, resource);
    } catch {
      this.deliverStanza(errorReply(iq, "modify", "bad-request", "invalid resource"));
      return;
    }
    this.deliverStanza(iqResult(iq, xml("bind", { xmlns: NS_BIND }, xml("jid", {}, session.jid!.full))));
  }

  // ---- output (SessionSink) --------------------------------------------------------------
  deliver(stanza: Element, session: Session): void {
    if (this.capture) {
      this.capture.stanzas.push(stanza);
      return;
    }
    this.session = session;
    this.deliverStanza(stanza);
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
    if (el.name === "resumed") this.session = session; // XEP-0198: this connection now carries the resumed session
    if (this.capture && el.name !== "stream:error") {
      this.capture.nonzas.push(el);
      return;
    }
    if (el.name === "stream:error") {
      this.streamError(el);
      return;
    }
    this.write(el.toString());
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
    clearTimeout(this.timer);
    if (this.headerSent) this.write(this.transport.kind === "websocket" ? xml("close", { xmlns: NS_FRAMING }).toString() : "</stream:stream>", true);
    this.transport.end();
    if (this.ownsSession()) this.session!.close(errorCondition ?? "stream closed");
  }

  private write(data: string, evenIfClosed = false): void {
    if (this.closed && !evenIfClosed) return;
    this.transport.write(data);
  }

  // ---- timeouts ----------------------------------------------------------------------
  // c2s_timeout: a stream that has not authenticated by then is closed. c2s_read_timeout:
  // after that long without input the client is probed. A module may send a probe the
  // client must answer (Prosody's `c2s-read-timeout` event: smacks asks for an ack, ping
  // sends an XEP-0199 ping); still silent one c2s_read_timeout later, the peer is taken
  // for dead: a session with stream management hibernates (nothing queued is lost), any
  // other stream ends with `connection-timeout`. Without such a module the probe is a
  // whitespace keepalive, which needs no answer: the stream stays (as Prosody), and a dead
  // peer is left to TCP keepalives and failing writes.
  private armTimer(): void {
    const authTimeout = Number(this.server.config.global.c2s_timeout ?? 300) * 1000;
    const readTimeout = Number(this.server.config.global.c2s_read_timeout ?? 840) * 1000;
    const opened = Date.now();
    let probe: { at: number; reads: number } | undefined; // sent, and waiting for any input
    let keptAliveAt = 0;
    const tick = () => {
      if (this.closed) return;
      const now = Date.now();
      if (!this.authenticated && now - opened >= authTimeout) {
        this.streamError("connection-timeout", "no authentication in time");
        return;
      }
      if (probe !== undefined && this.reads > probe.reads) probe = undefined; // answered
      if (probe !== undefined && now - probe.at >= readTimeout) {
        this.dropSilentPeer();
        return;
      }
      if (probe === undefined && now - Math.max(this.lastRead, keptAliveAt) >= readTimeout) {
        if (this.probe()) probe = { at: now, reads: this.reads };
        else keptAliveAt = now;
      }
      this.timer = setTimeout(tick, Math.min(authTimeout, readTimeout, 30_000));
      this.timer.unref?.();
    };
    this.timer = setTimeout(tick, Math.min(authTimeout, readTimeout, 30_000));
    this.timer.unref?.();
  }

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
    this.lastRead = Date.now();
    this.reads++;
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
    clearTimeout(this.timer);
    this.transport.abort();
  }
}
