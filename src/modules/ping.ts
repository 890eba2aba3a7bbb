// XEP-0199 XMPP Ping: the server answers pings addressed to it.
import { defineModule } from "../core/module.js";
import type { StanzaEvent } from "../xmpp/delivery.js";
import { iqResult } from "../xmpp/stanza.js";

export const NS_PING = "urn:xmpp:ping";

export default defineModule("ping", (module) => {
  module.addFeature(NS_PING);
  module.hook(`iq-get/host/${NS_PING}:ping`, ({ origin, stanza }: StanzaEvent) => {
    origin?.send(iqResult(stanza));
    return true;
  });
});
