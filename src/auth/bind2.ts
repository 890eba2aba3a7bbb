// mod_bind2: XEP-0386 Bind 2 inside SASL2. Binds a resource made from the
// client's `<tag/>` and answers with `<bound/>`, holding the answers of the
// inline requests that the modules owning them register (smacks' `<enable/>`,
// carbons' `<enable/>`).
import { randomBytes } from "node:crypto";
import type { Element } from "@xmpp/xml";
import { defineModule } from "../core/module.js";
import { isStanza, xml } from "../xmpp/stanza.js";
import { bind2Inline, sasl2Inline } from "./inline.js";

export const NS_BIND2 = "urn:xmpp:bind:0";

export default defineModule(
  "bind2",
  (module) => {
    const own = bind2Inline(module);
    sasl2Inline(module).use(module, {
      ns: NS_BIND2,
      name: "bind",
      advertise(origin) {
        const bind = xml("bind", { xmlns: NS_BIND2 });
        own.advertise(bind.c("inline"), origin);
        return bind;
      },
      handle({ session, stream, request }) {
        const tag = request.getChildText("tag");
        const resource = `${(tag ?? "mamkit").replace(/[^\w.-]/g, "").slice(0, 32) || "mamkit"}-${randomBytes(4).toString("hex")}`;
        module.bindSession(session, resource);
        // What binding sent (resource-bind hooks) goes out after <success/>, where the
        // client already counts stanzas: once an inline request turned stream management
        // on, it must pass through its queue (already filtered: to the output, not send()),
        // after anything enabling sent, so that both sides count the same.
        const sentByBinding = stream.releaseOutput();
        stream.holdOutput();
        const bound = xml("bound", { xmlns: NS_BIND2 });
        for (const [feature, req] of own.requests(request)) {
          const r = feature.handle({ session, stream, request: req });
          if (r?.reply) bound.cnode(r.reply as Element);
        }
        for (const el of sentByBinding) {
          if (isStanza(el)) session.output.deliver(el, session);
          else session.output.deliverNonza?.(el, session); // a nonza is not counted
        }
        return { reply: bound };
      },
    });
  },
  { dependencies: ["sasl2"] },
);
