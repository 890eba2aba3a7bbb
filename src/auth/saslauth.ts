// mod_saslauth, as Prosody has it: RFC 6120 SASL (PLAIN, SCRAM-SHA-1,
// SCRAM-SHA-256) in the stream features and the exchange, then legacy
// resource binding (RFC 6120 §7) and the RFC 3921 session no-op before binding.
import { randomBytes } from "node:crypto";
import type { Element } from "@xmpp/xml";
import { defineModule } from "../core/module.js";
import type { Session, StreamControl } from "../core/session.js";
import { errorReply, iqResult, xml } from "../xmpp/stanza.js";
import { FEATURE_ORDER } from "./inline.js";
import { hookSaslElements, NS_SASL, NS_SASL2, type SaslProfile, saslServiceOf } from "./sasl.js";

export const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
export const NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session";


interface FeaturesEvent {
  origin: Session | undefined;
  features: Element;
}

export default defineModule("saslauth", (module) => {
  const sasl = saslServiceOf(module);

  const profile: SaslProfile = {
    ns: NS_SASL,
    start: "auth",
    initial: (el) => el.getText(),
    succeed(_session, stream, done) {
      stream.writeTogether([xml("success", { xmlns: NS_SASL }, done.additional ?? "")]);
      stream.restartStream(); // RFC 6120 §6.4.6: the client opens a new stream
    },
  };

  module.hook(
    "stream-features",
    ({ origin, features }: FeaturesEvent) => {
      const stream = origin?.stream;
      if (!stream) return undefined;
      if (!stream.authenticated) {
        if (!sasl.mayAuthenticate(stream)) return undefined;
        const m = features.c("mechanisms", { xmlns: NS_SASL });
        for (const name of sasl.mechanisms(stream)) m.c("mechanism").t(name);
      } else if (origin.jid === undefined) {
        features.c("bind", { xmlns: NS_BIND });
        features.c("session", { xmlns: NS_SESSION }).c("optional");
      }
      return undefined;
    },
    FEATURE_ORDER.saslauth,
  );

  hookSaslElements(module, NS_SASL, ["auth", "response", "abort"], ({ origin, stanza }) => (origin ? sasl.handle(origin, stanza, profile) : undefined));

  // SASL2 elements where sasl2 is not loaded (its handlers come first where it is):
  // no authentication is available that way; an abort is answered all the same
  const refuse: Parameters<typeof hookSaslElements>[3] = ({ origin, stanza }) => {
    const stream = origin?.stream;
    if (!stream) return undefined;
    if (stanza.name === "abort") stream.writeTogether([xml("failure", { xmlns: NS_SASL2 }, xml("aborted", { xmlns: NS_SASL }))]);
    else stream.streamError("policy-violation", "authentication is not available now");
    return true;
  };
  hookSaslElements(module, NS_SASL2, ["authenticate", "response", "abort"], refuse, -10);

  // Stanzas of an authenticated stream before binding: the bind request and the
  // RFC 3921 session no-op (anything else is the connection's not-authorized).
  module.hook("stanza-before-bind", ({ origin, stanza }: { origin: Session; stanza: Element }) => {
    const stream = origin.stream;
    if (!stream || stanza.name !== "iq") return undefined;
    const bind = stanza.getChild("bind", NS_BIND);
    if (bind && stanza.attrs.type === "set") {
      legacyBind(origin, stream, stanza, bind);
      return true;
    }
    if (stanza.getChild("session", NS_SESSION)) {
      stream.writeTogether([iqResult(stanza)]);
      return true;
    }
    return undefined;
  });

  function legacyBind(session: Session, stream: StreamControl, iq: Element, bind: Element): void {
    const requested = bind.getChildText("resource")?.trim();
    const resource = requested || `mamkit-${randomBytes(4).toString("hex")}`;
    try {
      module.bindSession(session, resource);
    } catch {
      stream.writeTogether([errorReply(iq, "modify", "bad-request", "invalid resource")]);
      return;
    }
    stream.writeTogether([iqResult(iq, xml("bind", { xmlns: NS_BIND }, xml("jid", {}, session.jid!.full)))]);
  }
});
