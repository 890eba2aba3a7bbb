// The modules mamkit ships, loadable by name. The core knows none of them:
// src/server.ts hands this list to it, for the package, the CLI and the test kit.
import type { ModuleDefinition } from "./core/module.js";
import disco from "./modules/disco.js";
import ping from "./modules/ping.js";
import mam from "./mam/index.js";
import carbons from "./carbons/index.js";
import smacks from "./smacks/index.js";
import authInternalHashed from "./auth/accounts.js";
import bind2 from "./auth/bind2.js";
import sasl2 from "./auth/sasl2.js";
import saslauth from "./auth/saslauth.js";
import roster from "./roster/index.js";
import presence from "./presence/index.js";
import smartRetention from "./retention/index.js";

export const builtinModules: readonly ModuleDefinition[] = [
  authInternalHashed,
  saslauth,
  sasl2,
  bind2,
  roster,
  presence,
  disco,
  ping,
  mam,
  carbons,
  smacks,
  smartRetention,
];
