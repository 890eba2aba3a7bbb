// The modules mamkit ships, by name.
import type { ModuleDefinition } from "../core/module.js";
import disco from "./disco.js";
import ping from "./ping.js";
import mam from "../mam/index.js";
import carbons from "../carbons/index.js";
import smacks from "../smacks/index.js";

export const builtinModules: readonly ModuleDefinition[] = [disco, ping, mam, carbons, smacks];
