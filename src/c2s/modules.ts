// The authentication and binding features, as Prosody names them. The c2s
// stream (src/c2s/connection.ts) speaks the protocols; loading these modules
// on a host is what offers them there, as with Prosody's modules_enabled.
import { defineModule } from "../core/module.js";

/** RFC 6120 SASL (PLAIN, SCRAM-SHA-1, SCRAM-SHA-256) and legacy resource binding. */
export const saslauth = defineModule("saslauth", () => {});
/** XEP-0388 Extensible SASL Profile, with the user-agent id as the client id. */
export const sasl2 = defineModule("sasl2", (module) => module.dependsOn("saslauth"));
/** XEP-0386 Bind 2 inside SASL2, with inline stream management and carbons. */
export const bind2 = defineModule("bind2", (module) => module.dependsOn("sasl2"));
