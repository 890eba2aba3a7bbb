// XEP-0199 XMPP Ping: the server answers pings addressed to it, and pings a
// client sends to its own account (no 'to', or its bare JID), which the
// server handles on the account's behalf (RFC 6120 §10.3.3).
import { defineModule } from "../core/module.js";
import type { StanzaEvent } from "../core/delivery.js";
import type { Session } from "../core/session.js";
import { iqResult, xml } from "../xmpp/stanza.js";

export const NS_PING = "urn:xmpp:ping";

export default defineModule("ping", (module) => {
  module.addFeature(NS_PING);
  const pong = ({ origin, stanza }: StanzaEvent) => {
    origin?.send(iqResult(stanza));
    return true;
  };
  module.hook(`iq-get/host/${NS_PING}:ping`, pong);
  module.hook(`iq-get/self/${NS_PING}:ping`, pong);

  // A bound client silent for c2s_read_timeout is pinged (it must answer an iq,
  // RFC 6120 §8.2.3): an answer shows it is alive, none gets it disconnected.
  // Stream management's <r/> goes first where it is on (smacks, priority 0).
  let probes = 0;
  module.hook(
    "c2s-read-timeout",
    ({ session }: { session: Session }) => {
      if (session.jid === undefined) return undefined;
      session.send(xml("iq", { type: "get", id: `keepalive-${++probes}`, from: module.host, to: session.jid.full }, xml("ping", { xmlns: NS_PING })));
      return true;
    },
    -1,
  );
});
