// The modules mamkit ships, by name.
import type { ModuleDefinition } from "../core/module.js";
import disco from "./disco.js";
import ping from "./ping.js";
import mam from "../mam/index.js";
import carbons from "../carbons/index.js";
import smacks from "../smacks/index.js";
import authInternalHashed from "../auth/accounts.js";
import { bind2, sasl2, saslauth } from "../c2s/modules.js";
import roster from "../roster/index.js";
import presence from "../presence/index.js";
import smartRetention from "../retention/index.js";

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
