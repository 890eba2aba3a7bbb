// The SASL exchange (RFC 6120 §6; PLAIN, RFC 4616; SCRAM-SHA-1/-256, RFC
// 5802/7677), shared by the profiles of saslauth (urn:ietf:params:xml:ns:xmpp-sasl)
// and sasl2 (urn:xmpp:sasl:2, XEP-0388): which mechanisms are offered, the steps,
// failures with their throttle and the retries one stream gets. One exchange at a
// time per stream: a second element before the answer to the first (whose
// password check is asynchronous) would race it, up to a double success.
import { type Element, xml } from "@xmpp/xml";
import type { ModuleApi } from "../core/module.js";
import type { Session, StreamControl } from "../core/session.js";
import { parseJid } from "../xmpp/jid.js";
import { Accounts } from "./accounts.js";
import { FailureTracker } from "./failures.js";
import { SCRAM_MECHANISMS, ScramServer, type ScramStep } from "./scram.js";

export const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
export const NS_SASL2 = "urn:xmpp:sasl:2";
/** Failed SASL attempts allowed after the first on one stream (RFC 6120 §6.4.5: 2 to 5). */
export const DEFAULT_SASL_RETRIES = 3;

/** How one profile frames the exchange. */
export interface SaslProfile {
  readonly ns: string;
  /** The element that starts an exchange: `auth` or `authenticate`. */
  readonly start: string;
  /** The initial response the start element carries (`undefined`/`null`: none). */
  initial(el: Element): string | null | undefined;
  /** Checks the start element before any step; a failure condition and text refuse it. */
  check?(el: Element, session: Session): [condition: string, text: string] | undefined;
  /** Finishes a success the profile's way (the stream is authenticated already). */
  succeed(session: Session, stream: StreamControl, done: SaslSuccess): void | Promise<void>;
}

export interface SaslSuccess {
  user: string;
  /** Base64 additional data for the client (SCRAM's server signature). */
  additional: string | undefined;
  /** The start element (SASL2's inline requests are in it). */
  request: Element;
}

interface Exchange {
  profile: SaslProfile;
  mechanism: string;
  scram?: ScramServer;
  request: Element;
}

export class SaslService {
  private readonly exchanges = new WeakMap<Session, Exchange>();
  private readonly busy = new WeakSet<Session>();
  private readonly failedOn = new WeakMap<Session, number>();
  /** One throttle for the whole server: an address guessing on several hosts counts once. */
  private readonly failures: FailureTracker;
  readonly accounts: Accounts;

  constructor(private readonly module: ModuleApi) {
    this.accounts = new Accounts(module.hostView);
    this.failures = module.shared("sasl: failed authentications", () => new FailureTracker());
  }

  /** Authentication is allowed here: over TLS, or where encryption is not required. */
  mayAuthenticate(stream: StreamControl): boolean {
    return stream.secure || this.module.getOption("c2s_require_encryption") === false;
  }

  mechanisms(stream: StreamControl): string[] {
    // SCRAM-SHA-256 only where every account can answer it (Prosody 0.12's have SHA-1 keys only)
    const sha256 = this.accounts.sha256ForAll();
    const out = Object.keys(SCRAM_MECHANISMS).filter((m) => sha256 || SCRAM_MECHANISMS[m] !== "sha256");
    if (stream.secure || this.module.getOption("allow_unencrypted_plain_auth") === true) out.push("PLAIN");
    return out;
  }

  /** One element of the profile's namespace from a stream that is not authenticated yet. */
  handle(session: Session, el: Element, profile: SaslProfile): true {
    const stream = session.stream;
    if (!stream) return true;
    if (this.busy.has(session)) {
      stream.streamError("policy-violation", "wait for the answer to the previous SASL element");
      return true;
    }
    this.busy.add(session);
    void this.step(session, stream, el, profile).finally(() => this.busy.delete(session));
    return true;
  }

  private async step(session: Session, stream: StreamControl, el: Element, profile: SaslProfile): Promise<void> {
    if (el.name === "abort") {
      this.exchanges.delete(session);
      this.fail(session, stream, profile, "aborted");
      return;
    }
    if (stream.authenticated) {
      stream.streamError("policy-violation", "authentication is not available now");
      return;
    }
    if (el.name === profile.start) {
      await this.begin(session, stream, el, profile);
      return;
    }
    if (el.name === "response") {
      const ex = this.exchanges.get(session);
      if (!ex || ex.profile !== profile) {
        this.fail(session, stream, profile, "malformed-request", "no authentication in progress");
        return;
      }
      await this.respond(session, stream, ex, el.getText());
      return;
    }
    stream.streamError("unsupported-stanza-type", `unexpected <${el.name}/>`);
  }

  private async begin(session: Session, stream: StreamControl, el: Element, profile: SaslProfile): Promise<void> {
    if (!this.mayAuthenticate(stream)) {
      this.fail(session, stream, profile, "encryption-required", "use STARTTLS first");
      return;
    }
    const mechanism = el.attrs.mechanism as string;
    if (!this.mechanisms(stream).includes(mechanism)) {
      this.fail(session, stream, profile, mechanism === "PLAIN" ? "encryption-required" : "invalid-mechanism");
      return;
    }
    const refused = profile.check?.(el, session);
    if (refused) {
      this.fail(session, stream, profile, refused[0], refused[1]);
      return;
    }
    const ex: Exchange = { profile, mechanism, request: el };
    const hash = SCRAM_MECHANISMS[mechanism];
    if (hash) {
      ex.scram = new ScramServer(hash, (user) => {
        const local = this.nodeprep(user);
        return local === undefined ? Promise.resolve(undefined) : this.accounts.credentials(local, hash);
      });
    }
    this.exchanges.set(session, ex);
    const initial = profile.initial(el);
    const sasl1 = profile.start === "auth";
    if (initial === null || initial === undefined || (sasl1 && initial === "")) {
      if (ex.scram || initial === null || initial === undefined) {
        this.challenge(stream, profile, "");
        return;
      }
    }
    await this.respond(session, stream, ex, initial === "=" ? "" : (initial ?? ""));
  }

  private nodeprep(user: string): string | undefined {
    try {
      return parseJid(`${user}@${this.module.host}`).local;
    } catch {
      return undefined;
    }
  }

  private async respond(session: Session, stream: StreamControl, ex: Exchange, b64: string): Promise<void> {
    const message = decodeBase64(b64);
    if (message === undefined) {
      this.fail(session, stream, ex.profile, "incorrect-encoding");
      return;
    }
    if (ex.scram) {
      const step: ScramStep = await ex.scram.step(message);
      if (stream.closed) return;
      if (step.kind === "challenge") this.challenge(stream, ex.profile, Buffer.from(step.data).toString("base64"));
      else if (step.kind === "failure") await this.failed(session, stream, ex, step.condition, step.text, ex.scram.user);
      else await this.succeeded(session, stream, ex, step.username, Buffer.from(step.data).toString("base64"));
      return;
    }
    // PLAIN (RFC 4616): authzid NUL authcid NUL passwd
    const parts = message.split("\u0000");
    if (parts.length !== 3 || parts[1] === "" || parts[2] === "") {
      this.fail(session, stream, ex.profile, "malformed-request");
      return;
    }
    const [authzid, authcid, password] = parts as [string, string, string];
    const user = this.nodeprep(authcid);
    if (authzid !== "" && authzid !== authcid && authzid !== `${user}@${this.module.host}`) {
      this.fail(session, stream, ex.profile, "invalid-authzid");
      return;
    }
    const ok = user !== undefined && (await this.accounts.verify(user, password));
    if (stream.closed) return;
    if (ok) await this.succeeded(session, stream, ex, user!, undefined);
    else await this.failed(session, stream, ex, "not-authorized", undefined, user ?? authcid);
  }

  private challenge(stream: StreamControl, profile: SaslProfile, b64: string): void {
    stream.writeTogether([xml("challenge", { xmlns: profile.ns }, b64)]);
  }

  /**
   * Answers a failed exchange. RFC 6120 §6.4.5: a few retries are allowed on one
   * stream (`sasl_max_retries`, 2 to 5); the failure past them ends the stream with
   * `policy-violation`, after its own <failure/>. An abort is no failed attempt.
   */
  private fail(session: Session, stream: StreamControl, profile: SaslProfile, condition: string, text?: string): void {
    this.exchanges.delete(session);
    const f = xml("failure", { xmlns: profile.ns }, xml(condition, { xmlns: NS_SASL }));
    if (text) f.c("text").t(text);
    stream.writeTogether([f]);
    if (condition === "aborted") return;
    const n = (this.failedOn.get(session) ?? 0) + 1;
    this.failedOn.set(session, n);
    const retries = (this.module.getOption("sasl_max_retries") as number | undefined) ?? DEFAULT_SASL_RETRIES;
    if (n > retries) stream.streamError("policy-violation", "too many failed authentication attempts");
  }

  private async failed(session: Session, stream: StreamControl, ex: Exchange, condition: string, text: string | undefined, user: string | undefined): Promise<void> {
    const key = user ?? "";
    const delay = this.failures.failed(this.module.host, key, stream.remoteAddress);
    this.module.log.info({ user: key, delayMs: delay }, "authentication failed");
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    if (stream.closed) return;
    this.fail(session, stream, ex.profile, condition, text);
  }

  private async succeeded(session: Session, stream: StreamControl, ex: Exchange, user: string, additional: string | undefined): Promise<void> {
    if (!(await this.module.hostView.userExists(user))) {
      await this.failed(session, stream, ex, "not-authorized", undefined, user);
      return;
    }
    this.failures.succeeded(this.module.host, user, stream.remoteAddress);
    this.exchanges.delete(session);
    stream.markAuthenticated();
    session.authUser = user;
    this.module.log.info({ user, mechanism: ex.mechanism, profile: ex.profile.ns }, "authenticated");
    await ex.profile.succeed(session, stream, { user, additional, request: ex.request });
  }
}

/** Strict base64 (what decodes must encode back the same), or undefined. */
function decodeBase64(b64: string): string | undefined {
  const t = b64.trim();
  const message = Buffer.from(t, "base64").toString("utf8");
  if (t !== "" && Buffer.from(message, "utf8").toString("base64").replace(/=+$/, "") !== t.replace(/=+$/, "")) return undefined;
  return message;
}

type SaslElementHandler = (data: { origin: Session | undefined; stanza: Element }) => unknown;

/**
 * Hooks `handler` on the elements `names` of namespace `ns`, both before
 * authentication (`stanza-unauthenticated/…`, the exchange) and after it
 * (`stanza/…`, where the service answers policy-violation).
 */
export function hookSaslElements(module: ModuleApi, ns: string, names: readonly string[], handler: SaslElementHandler, priority = 0): void {
  for (const name of names) {
    module.hook(`stanza-unauthenticated/${ns}:${name}`, handler, priority);
    module.hook(`stanza/${ns}:${name}`, handler, priority);
  }
}

/** The SASL service of each host's saslauth (sasl2 uses the same: one retry count, one throttle). */
const services = new WeakMap<object, SaslService>();

export function saslServiceOf(module: ModuleApi): SaslService {
  let s = services.get(module.hostView);
  if (!s) {
    s = new SaslService(module);
    services.set(module.hostView, s);
  }
  return s;
}
