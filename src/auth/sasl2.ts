// mod_sasl2: XEP-0388 Extensible SASL Profile. The same exchange as saslauth
// (one retry count and throttle per stream), a `<user-agent id/>` (a UUID)
// that becomes the session's stable client id, and inline features inside
// `<success/>`: those the modules that own them register (smacks' resumption,
// bind2's binding). No stream restart: `<success/>` and what the inline
// requests sent follow each other in one write.
import type { Element } from "@xmpp/xml";
import { defineModule } from "../core/module.js";
import { isClientId, type Session } from "../core/session.js";
import { xml } from "../xmpp/stanza.js";
import { FEATURE_ORDER, type InlineResult, sasl2Inline } from "./inline.js";
import { hookSaslElements, NS_SASL2, type SaslProfile, saslServiceOf } from "./sasl.js";

export { NS_SASL2 } from "./sasl.js";

export default defineModule(
  "sasl2",
  (module) => {
    const sasl = saslServiceOf(module);
    const inline = sasl2Inline(module);

    const profile: SaslProfile = {
      ns: NS_SASL2,
      start: "authenticate",
      initial: (el) => el.getChildText("initial-response"),
      check(el) {
        const id = el.getChild("user-agent")?.attrs.id as string | undefined;
        if (id !== undefined && !isClientId(id)) return ["malformed-request", "the user-agent id must be a UUID"];
        return undefined;
      },
      async succeed(session, stream, done) {
        const id = done.request.getChild("user-agent")?.attrs.id as string | undefined;
        if (id !== undefined) session.clientId = id.toLowerCase();
        stream.holdOutput();
        for (const [feature, request] of inline.requests(done.request)) await feature.prepare?.({ session, stream, request });
        if (stream.closed) return;
        const replies: Element[] = [];
        let current: Session = session;
        for (const [feature, request] of inline.requests(done.request)) {
          const r: InlineResult | undefined = feature.handle({ session, stream, request });
          if (r?.reply) replies.push(r.reply);
          if (r?.resumed) {
            current = r.resumed;
            break;
          }
        }
        const success = xml("success", { xmlns: NS_SASL2 });
        if (done.additional) success.c("additional-data").t(done.additional);
        success.c("authorization-identifier").t(current.jid?.full ?? `${done.user}@${module.host}`);
        for (const r of replies) success.cnode(r);
        // <success/> and the stanzas the inline requests caused (a resumption's resent
        // ones) go out together. COMPAT: @xmpp/client 0.14 handles <success/>
        // asynchronously and replaces its parser meanwhile, so stanzas arriving in a
        // later TCP/TLS read after it are misparsed: one write keeps them in the chunk it
        // parses synchronously, as Prosody's buffered writes do. (On WebSocket each is
        // its own message, RFC 7395.)
        stream.writeTogether([success, ...stream.releaseOutput()]);
        if (!current.jid) stream.sendFeatures();
      },
    };

    module.hook(
      "stream-features",
      ({ origin, features }: { origin: Session | undefined; features: Element }) => {
        const stream = origin?.stream;
        if (!stream || stream.authenticated || !sasl.mayAuthenticate(stream)) return undefined;
        const a = features.c("authentication", { xmlns: NS_SASL2 });
        for (const name of sasl.mechanisms(stream)) a.c("mechanism").t(name);
        inline.advertise(a.c("inline"), origin);
        return undefined;
      },
      FEATURE_ORDER.sasl2,
    );

    hookSaslElements(module, NS_SASL2, ["authenticate", "response", "abort"], ({ origin, stanza }) => (origin ? sasl.handle(origin, stanza, profile) : undefined));
  },
  { dependencies: ["saslauth"] },
);
