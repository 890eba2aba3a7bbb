// An example module for `plugin_paths` (see docs/modules.md): it remembers
// when each user last sent a message and answers
//   <iq type="get" to="user@host"><last xmlns="jabber:iq:last"/></iq>
// (XEP-0012, Last Activity) with the seconds since then. (It answers anyone:
// a real module would ask the roster whether the asker may know.)
// Plain ESM JavaScript, so `mamkit serve` can import it as it is; write it in
// TypeScript and point plugin_paths at your build output just as well.
import { defineModule, errorReply, iqResult, xml } from "mamkit";

export default defineModule(
  "last_seen",
  (module) => {
    const seen = module.openStore("last_seen", "map");
    const since = module.options.last_seen_min_interval * 1000;

    module.hook("pre-message/bare", async ({ origin, stanza }) => {
      if (!origin?.jid || stanza.attrs.type === "error") return undefined;
      const now = module.clock.now();
      const before = await seen.get(origin.jid.local, "at");
      // one write per interval at most: a chat burst is not a write per message
      if (typeof before !== "number" || now - before >= since) await seen.set(origin.jid.local, "at", now);
      return undefined;
    });

    const lastActivity = async ({ origin, stanza }) => {
      // to a contact's bare JID; to one's own account the `to` is gone (as in Prosody)
      const user = stanza.attrs.to ? stanza.attrs.to.split("@")[0] : origin?.jid?.local;
      const at = await seen.get(user, "at");
      if (typeof at !== "number") {
        origin?.send(errorReply(stanza, "cancel", "item-not-found"));
        return true;
      }
      const seconds = Math.floor((module.clock.now() - at) / 1000);
      origin?.send(iqResult(stanza, xml("query", { xmlns: "jabber:iq:last", seconds: String(seconds) })));
      return true;
    };
    module.hook("iq-get/bare/jabber:iq:last:query", lastActivity);
    module.hook("iq-get/self/jabber:iq:last:query", lastActivity);

    module.addFeature("jabber:iq:last");
  },
  {
    options: {
      last_seen_min_interval: { type: "number", default: 60, min: 0, integer: true, doc: "seconds between two writes of one user's time" },
    },
  },
);
