// XEP-0030 Service Discovery: the server's identities and features (that
// modules register with addIdentity / addFeature), and accounts' disco#info.
import { defineModule } from "../core/module.js";
import type { StanzaEvent } from "../core/delivery.js";
import { Element, iqResult, StanzaError } from "../xmpp/stanza.js";

export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";

export default defineModule("disco", (module) => {
  const host = module.hostView;
  module.addIdentity("server", "im", module.options.name);
  module.addFeature(NS_DISCO_INFO);
  module.addFeature(NS_DISCO_ITEMS);

  module.hook(`iq-get/host/${NS_DISCO_INFO}:query`, ({ origin, stanza }: StanzaEvent) => {
    const query = stanza.getChild("query", NS_DISCO_INFO)!;
    if (query.attrs.node !== undefined) throw new StanzaError("item-not-found", "no such node");
    const out = new Element("query", { xmlns: NS_DISCO_INFO });
    for (const id of module.discoInfo().identities) {
      out.c("identity", { category: id.category, type: id.type, name: id.name });
    }
    for (const f of module.discoInfo().features) out.c("feature", { var: f });
    module.fire("host-disco-info", { origin, stanza, reply: out });
    origin?.send(iqResult(stanza, out));
    return true;
  });

  // An account's bare JID (asked by the account itself or anyone else):
  // identity account/registered, and the features modules add through
  // the `account-disco-info` event ({ origin, stanza, user, reply }).
  module.hook(`iq-get/bare/${NS_DISCO_INFO}:query`, async ({ origin, stanza }: StanzaEvent) => {
    const query = stanza.getChild("query", NS_DISCO_INFO)!;
    if (query.attrs.node !== undefined) throw new StanzaError("item-not-found", "no such node");
    const to = (stanza.attrs.to as string | undefined) ?? origin?.jid?.bare;
    const user = to?.slice(0, to.indexOf("@"));
    if (!user || !(await host.userExists(user))) throw new StanzaError("service-unavailable");
    const out = new Element("query", { xmlns: NS_DISCO_INFO });
    out.c("identity", { category: "account", type: "registered" });
    out.c("feature", { var: NS_DISCO_INFO });
    module.fire("account-disco-info", { origin, stanza, user, reply: out });
    origin?.send(iqResult(stanza, out));
    return true;
  });

  // An account's items: none are published here (no PEP yet).
  module.hook(`iq-get/bare/${NS_DISCO_ITEMS}:query`, async ({ origin, stanza }: StanzaEvent) => {
    const to = (stanza.attrs.to as string | undefined) ?? origin?.jid?.bare;
    const user = to?.slice(0, to.indexOf("@"));
    if (!user || !(await host.userExists(user))) throw new StanzaError("service-unavailable");
    origin?.send(iqResult(stanza, new Element("query", { xmlns: NS_DISCO_ITEMS })));
    return true;
  });

  module.hook(`iq-get/host/${NS_DISCO_ITEMS}:query`, ({ origin, stanza }: StanzaEvent) => {
    const query = stanza.getChild("query", NS_DISCO_ITEMS)!;
    if (query.attrs.node !== undefined) throw new StanzaError("item-not-found", "no such node");
    const out = new Element("query", { xmlns: NS_DISCO_ITEMS });
    module.fire("host-disco-items", { origin, stanza, reply: out });
    origin?.send(iqResult(stanza, out));
    return true;
  });
}, { options: { name: { type: "string", default: "mamkit", doc: "the server's name in its disco identity" } } });
