// Prosody's plugin_paths: modules named in `modules_enabled` that are not
// built in are looked for in these folders, as ES modules whose default
// export is the module definition (what defineModule returns).
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Config } from "./config.js";
import { HostError } from "./errors.js";
import type { ModuleDefinition } from "./module.js";

/** The files a module `name` may be in, per folder, in the order they are tried. */
export function pluginCandidates(folder: string, name: string): string[] {
  const out: string[] = [];
  for (const base of [name, `mod_${name}`]) {
    for (const ext of [".js", ".mjs"]) out.push(join(folder, `${base}${ext}`));
    for (const ext of [".js", ".mjs"]) out.push(join(folder, base, `index${ext}`));
  }
  return out;
}

/** Every module name the config enables, globally or on a host. */
export function enabledNames(config: Config): string[] {
  const names = new Set<string>();
  const add = (list: unknown) => {
    if (Array.isArray(list)) for (const n of list) if (typeof n === "string") names.add(n);
  };
  add(config.global.modules_enabled);
  for (const section of config.hosts.values()) add(section.modules_enabled);
  return [...names];
}

/**
 * Loads, from `folders`, every module the config enables that `known` does
 * not provide, and what those depend on. A name found in no folder is left
 * for the server to report (with its position in the config); a file that
 * is there but does not load, or exports no module of that name, is an error
 * naming the file.
 */
export async function loadPlugins(config: Config, folders: readonly string[], known: ReadonlySet<string>): Promise<ModuleDefinition[]> {
  const loaded = new Map<string, ModuleDefinition>();
  const queue = enabledNames(config).filter((n) => !known.has(n));
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (loaded.has(name) || known.has(name)) continue;
    const file = folders.flatMap((f) => pluginCandidates(f, name)).find((p) => existsSync(p) && statSync(p).isFile());
    if (file === undefined) continue;
    const def = await importDefinition(file, name);
    loaded.set(name, def);
    for (const dep of def.dependencies ?? []) queue.push(dep);
  }
  return [...loaded.values()];
}

async function importDefinition(file: string, name: string): Promise<ModuleDefinition> {
  let exported: unknown;
  try {
    exported = ((await import(pathToFileURL(file).href)) as { default?: unknown }).default;
  } catch (err) {
    throw new HostError("MAMKIT_ERR_MODULE_LOAD", `module ${JSON.stringify(name)} (${file}) cannot be imported: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const def = exported as Partial<ModuleDefinition> | undefined;
  if (typeof def !== "object" || def === null || typeof def.load !== "function" || typeof def.name !== "string") {
    throw new HostError(
      "MAMKIT_ERR_MODULE_LOAD",
      `module ${JSON.stringify(name)} (${file}): expected a default export made with defineModule("${name}", …), got ${def === undefined ? "no default export" : typeof def}`,
    );
  }
  if (def.name !== name) {
    throw new HostError("MAMKIT_ERR_MODULE_LOAD", `module ${JSON.stringify(name)} (${file}) is named ${JSON.stringify(def.name)}: the file and the name must agree`);
  }
  return def as ModuleDefinition;
}
