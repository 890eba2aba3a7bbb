// The server: config, storage, logger, scheduler, router, and one Host per
// configured domain. `createServer` checks the whole config and loads every
// module before returning; any problem is a HostError naming what is wrong.
import type { Element } from "@xmpp/xml";
import { type Clock, systemClock } from "./clock.js";
import { type Config, CORE_KEYS, isParsedConfig, parseConfig } from "./config.js";
import { existsSync } from "node:fs";
import { ConfigError, HostError, unknownModuleError } from "./errors.js";
import { pluginCandidates } from "./plugins.js";
import { Host } from "./host.js";
import { createLogger, type Logger } from "./logger.js";
import type { ModuleDefinition } from "./module.js";
import { checkDeclared, optionPath } from "./options.js";
import { Scheduler, type SchedulerMode } from "./scheduler.js";
import { openStorage } from "../storage/index.js";
import { LocalCoordination } from "../storage/coordination.js";
import type { Coordination, StorageDriver } from "../storage/types.js";
import { Router } from "./router.js";

export interface ServerOptions {
  /** A parsed config, or a plain object in the JSON config's shape. */
  config: Config | Record<string, unknown>;
  /**
   * Modules that can be loaded by name but are loaded only where named (the
   * ones mamkit ships, from src/builtins.ts: the core itself knows none).
   */
  builtins?: readonly ModuleDefinition[];
  /**
   * Modules of the embedding application. They can be named in
   * `modules_enabled`, and are loaded on every host unless a host lists them
   * in `modules_disabled`.
   */
  modules?: readonly ModuleDefinition[];
  clock?: Clock;
  logger?: Logger;
  /** An already open driver (the config's `storage` is then ignored). */
  storage?: StorageDriver;
  /** false: scheduled tasks run only on demand (the same as `scheduler: "off"`). */
  timers?: boolean;
  /**
   * How scheduled tasks start: "cron" (default: node-cron, wall-clock time),
   * "clock" (on `clock`'s timers: a ManualClock fires them as it advances; the
   * test kit's choice), or "off" (only on demand).
   */
  scheduler?: SchedulerMode;
}

export class Server {
  readonly config: Config;
  readonly log: Logger;
  readonly clock: Clock;
  readonly storage: StorageDriver;
  /** The nodes sharing the storage: exclusive tasks, barriers (alone: this process). */
  readonly cluster: Coordination;
  readonly scheduler: Scheduler;
  readonly router: Router;
  readonly hosts = new Map<string, Host>();
  private readonly registry = new Map<string, ModuleDefinition>();
  private readonly extra: readonly ModuleDefinition[];
  private stopping: Promise<void> | undefined;
  private halted = false;
  private readonly unloads: Promise<unknown>[] = [];

  constructor(opts: ServerOptions) {
    this.config = isParsedConfig(opts.config) ? opts.config : parseConfig(opts.config);
    this.log = opts.logger ?? createLogger({ level: this.config.logLevel, format: this.config.logFormat });
    this.clock = opts.clock ?? systemClock;
    this.scheduler = new Scheduler(opts.scheduler ?? (opts.timers === false ? "off" : "cron"), this.clock);
    this.router = new Router(this);
    for (const def of opts.builtins ?? []) this.registry.set(def.name, def);
    this.extra = opts.modules ?? [];
    for (const def of this.extra) {
      const known = this.registry.get(def.name);
      if (known && known !== def) {
        throw new HostError("MAMKIT_ERR_MODULE_LOAD", `two different modules are named ${JSON.stringify(def.name)}`);
      }
      this.registry.set(def.name, def);
    }
    this.checkOptions();
    const plans = this.planHosts();
    this.storage = opts.storage ?? openStorage(this.config.storage);
    this.cluster = this.storage.coordination?.((message, err) => this.log.warn({ err }, message)) ?? new LocalCoordination();
    try {
      for (const [domain, section, modules] of plans) {
        const host = new Host(this, domain, section);
        this.hosts.set(domain, host);
        for (const m of modules) host.loadModule(m);
      }
    } catch (err) {
      void this.teardown();
      throw err;
    }
    this.scheduler.start();
    // ("server started" is logged once the listeners are bound: src/server.ts)
    this.log.debug({ hosts: [...this.hosts.keys()] }, "hosts and modules loaded");
  }

  /** The definition of a built-in or registered module; an unknown name lists the known ones. */
  moduleDefinition(name: string): ModuleDefinition {
    const def = this.registry.get(name);
    if (!def) throw unknownModuleError(name, undefined, this.registry.keys());
    return def;
  }

  get knownModules(): string[] {
    return [...this.registry.keys()].sort();
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new HostError("MAMKIT_ERR_HOST_UNKNOWN", `no host ${JSON.stringify(name)} is configured`);
    return h;
  }

  /** Routes a stanza sent by the server itself from `host`. */
  routeFromHost(host: Host, stanza: Element): void {
    this.router.fromHost(host, stanza);
  }

  /**
   * Unloads every module, stops the scheduler, and closes storage once what
   * the modules write on their way out is written. Resolves when closed.
   */
  async stop(): Promise<void> {
    this.halted = true;
    if (this.stopping !== undefined) return this.stopping;
    this.stopping = this.teardown().then(() => this.log.info("server stopped"));
    return this.stopping;
  }

  /** `stop()` was called: the server takes no new session, connection or listener. */
  get stopped(): boolean {
    return this.halted;
  }

  /** Marks the server as stopping before a subclass's own shutdown steps. */
  protected markStopping(): void {
    this.halted = true;
  }

  /** Work modules do at unload (e.g. a last flush): storage closes after it. */
  unloading(p: Promise<unknown>): void {
    this.unloads.push(p);
  }

  private async teardown(): Promise<void> {
    this.scheduler.stop();
    for (const h of this.hosts.values()) {
      for (const s of [...h.allSessions()]) s.close("system-shutdown");
      h.unloadAll();
    }
    await Promise.allSettled(this.unloads.splice(0));
    await this.cluster?.close();
    await this.storage?.close();
  }

  /**
   * Checks module options against the declarations of every known module, in
   * the global section and in each host's; unknown keys are warnings.
   */
  private checkOptions(): void {
    const declaredBy = new Map<string, ModuleDefinition>();
    for (const def of this.registry.values()) {
      for (const key of Object.keys(def.options ?? {})) declaredBy.set(key, def);
    }
    const sections: [string | undefined, Readonly<Record<string, unknown>>][] = [
      [undefined, this.config.global],
      ...[...this.config.hosts].map(([h, s]) => [h, s] as [string, Readonly<Record<string, unknown>>]),
    ];
    for (const [host, section] of sections) {
      for (const [key, value] of Object.entries(section)) {
        if (CORE_KEYS.has(key)) continue;
        const def = declaredBy.get(key);
        if (!def) {
          this.log.warn({ key: optionPath(key, host) }, "unknown config key (no known module reads it)");
          continue;
        }
        checkDeclared(def.options![key]!, value, optionPath(key, host), def.name);
      }
    }
  }

  private unknownPlugin(name: string, where: string | undefined, known: Iterable<string>): HostError {
    const err = unknownModuleError(name, where, known);
    const hint = pluginHint(name, this.config.pluginPaths);
    return hint === "" ? err : new HostError(err.code, err.message.replace(/; known modules: /, `${hint}; known modules: `));
  }

  /** Which modules each host loads: Prosody's formula (global ∪ host enabled, minus disabled). */
  private planHosts(): [string, Readonly<Record<string, unknown>>, (string | ModuleDefinition)[]][] {
    if (this.config.hosts.size === 0) throw new ConfigError("hosts", "at least one host, e.g. { \"localhost\": {} }");
    const g = this.config.global;
    const known = new Set(this.registry.keys());
    const globalEnabled = (g.modules_enabled as string[] | undefined) ?? [];
    const globalDisabledList = (g.modules_disabled as string[] | undefined) ?? [];
    const globalDisabled = new Set(globalDisabledList);
    // disabling a module nobody provides is harmless (as in Prosody): a warning, once per list entry
    const warnDisabled = (list: readonly string[], host: string | undefined) => {
      for (const [i, n] of list.entries()) {
        if (known.has(n)) continue;
        const key = optionPath(`modules_disabled[${i}]`, host);
        this.log.warn({ key, module: n }, `modules_disabled names no known module ${JSON.stringify(n)} (ignored)`);
      }
    };
    warnDisabled(globalDisabledList, undefined);
    const plans: [string, Readonly<Record<string, unknown>>, (string | ModuleDefinition)[]][] = [];
    for (const [domain, section] of this.config.hosts) {
      const hostEnabled = (section.modules_enabled as string[] | undefined) ?? [];
      const hostDisabledList = (section.modules_disabled as string[] | undefined) ?? [];
      const hostDisabled = new Set(hostDisabledList);
      warnDisabled(hostDisabledList, domain);
      /** Where each name is first named, for the error about an unknown one. */
      const namedAt = new Map<string, string>();
      for (const [i, n] of globalEnabled.entries()) if (!namedAt.has(n)) namedAt.set(n, `modules_enabled[${i}]`);
      for (const [i, n] of hostEnabled.entries()) if (!namedAt.has(n)) namedAt.set(n, optionPath(`modules_enabled[${i}]`, domain));
      const names: string[] = [];
      for (const n of globalEnabled) if (!globalDisabled.has(n) && !names.includes(n)) names.push(n);
      for (const n of hostEnabled) if (!names.includes(n)) names.push(n);
      const wanted: (string | ModuleDefinition)[] = names.filter((n) => !hostDisabled.has(n));
      // Prosody's `authentication`: the account provider is loaded first, by itself
      const auth = (section.authentication ?? g.authentication ?? "internal_hashed") as string;
      if (auth === "internal_hashed" && !wanted.includes("auth_internal_hashed")) {
        wanted.unshift("auth_internal_hashed");
        if (!namedAt.has("auth_internal_hashed")) {
          const where =
            section.authentication !== undefined
              ? optionPath("authentication", domain)
              : g.authentication !== undefined
                ? "authentication"
                : 'authentication (default "internal_hashed")';
          namedAt.set("auth_internal_hashed", where);
        }
      }
      // unknown names fail before anything loads
      for (const n of wanted) if (!known.has(n as string)) throw this.unknownPlugin(n as string, namedAt.get(n as string), known);
      for (const def of this.extra) {
        if (!names.includes(def.name) && !hostDisabled.has(def.name) && !globalDisabled.has(def.name)) wanted.push(def);
      }
      plans.push([domain, section, wanted]);
    }
    return plans;
  }
}

/** What plugin_paths say about a module name nobody provides: where it was looked for, or why it was not loaded. */
function pluginHint(name: string, folders: readonly string[]): string {
  if (folders.length === 0) return "";
  const found = folders.flatMap((f) => pluginCandidates(f, name)).find((p) => existsSync(p));
  if (found !== undefined) {
    return ` (${found} is there, but this server was built with \`new Server\`/\`createServer\`, which does not import from plugin_paths: use \`await Server.create(...)\` or \`Server.fromFile(...)\`)`;
  }
  return ` (not in plugin_paths either: looked for ${name}.js, mod_${name}.js, ${name}/index.js (or .mjs) in ${folders.join(", ")})`;
}

/** Creates a server from a config: checks it, opens storage, loads every module. */