// Module definitions and the API a module gets (Prosody's `module` object).
import type { Element } from "@xmpp/xml";
import type { OptionDecl, OptionDecls, OptionValue, OptionValues } from "./options.js";
import type { Logger } from "./logger.js";
import type { Clock } from "./clock.js";
import type { PayloadOf } from "./event-payloads.js";
import type { Handler } from "./events.js";
import type { Coordination, StoreKind, StoreOf } from "../storage/types.js";
import type { FilterDirection, Session, StanzaFilter } from "./session.js";
import type { Host } from "./host.js";

export interface ModuleDefinition {
  /** The name used in `modules_enabled`: lower-case letters, digits and `_`. */
  readonly name: string;
  /** Options this module reads; checked at start-up against the config. */
  readonly options?: OptionDecls;
  /** Modules loaded before this one (the same as calling `dependsOn` first thing). */
  readonly dependencies?: readonly string[];
  /** Runs once per host. May return a function that runs at unload. */
  load(module: ModuleApi): void | (() => void);
}

/** The API a module gets, with its declared options typed. */
export type TypedModuleApi<D extends OptionDecls> = ModuleApi & { readonly options: OptionValues<D> };

/**
 * Declares a module: `defineModule("echo", (module) => { ... })`. Options
 * declared in `extra.options` (name, type, default, range) arrive typed in
 * `module.options`: each is declared once, its default with it.
 */
export function defineModule<const D extends OptionDecls = Record<never, OptionDecl>>(
  name: string,
  load: (module: TypedModuleApi<D>) => void | (() => void),
  extra: Omit<ModuleDefinition, "name" | "load" | "options"> & { options?: D } = {},
): ModuleDefinition {
  return { name, load: load as ModuleDefinition["load"], ...extra };
}

export interface Identity {
  category: string;
  type: string;
  name?: string;
}

export interface Timer {
  cancel(): void;
}

/** What a module may use of a host, its own or another this server serves. */
export interface HostView {
  readonly name: string;
  /** The account exists (asks the account provider, e.g. internal_hashed). */
  userExists(user: string): Promise<boolean>;
  /** The user's bound sessions by resource, if any. */
  sessionsOf(user: string): ReadonlyMap<string, Session> | undefined;
  /** The session bound to this full JID, if any. */
  sessionFor(fullJid: string): Session | undefined;
  /**
   * Opens a store (Prosody's module:open_store). Type its values with the
   * second parameter: `openStore<"map", Seen>("seen", "map")`.
   */
  openStore<K extends StoreKind, V = never>(name: string, kind: K): StoreOf<K, V>;
  /** A mark for the writes made from now on: `durable(mark)` rejects if one of them was lost. */
  writeMark(): number;
  /** Resolves once every write made so far is durable; with a mark, rejects if a write since it was lost. */
  durable(mark?: number): Promise<void>;
}

export interface ModuleApi {
  readonly name: string;
  /** The domain this instance serves. */
  readonly host: string;
  readonly log: Logger;
  readonly clock: Clock;

  /** Hooks `event`; for the names in EventPayloads the handler's data is typed. */
  hook<E extends string>(event: E, handler: (data: PayloadOf<E>) => unknown, priority?: number): void;
  unhook(event: string, handler: Handler): void;
  /** Fires on this host; returns what the first handler returned (see EventBus). */
  fire<E extends string>(event: E, data?: PayloadOf<E>): unknown;

  /** Loads `name` on this host first (if not loaded) and records the dependency. */
  dependsOn(name: string): void;

  /**
   * The options this module declared (ModuleDefinition.options), typed and read
   * once: the host's value, else the global one, else the declared default.
   */
  readonly options: Readonly<Record<string, unknown>>;
  /** Any option read with a declaration (e.g. one another module declares and exports). */
  readOption<D extends OptionDecl>(name: string, decl: D): OptionValue<D>;

  /**
   * The configured value (host section, else global). The typed getters below
   * fall back to the given default, else to the default this module declared
   * for the option (and take its declared range when none is given).
   */
  getOption(name: string): unknown;
  getOptionNumber(name: string, def: number, range?: { min?: number; max?: number; integer?: boolean }): number;
  getOptionNumber(name: string, def?: number, range?: { min?: number; max?: number; integer?: boolean }): number | undefined;
  getOptionBoolean(name: string, def: boolean): boolean;
  getOptionBoolean(name: string, def?: boolean): boolean | undefined;
  getOptionString(name: string, def: string): string;
  getOptionString(name: string, def?: string): string | undefined;
  getOptionEnum<T extends string | boolean>(name: string, values: readonly T[], def?: T): T;
  getOptionList(name: string, def?: readonly string[]): string[];
  /** Seconds (`Infinity` for "never"). */
  getOptionPeriod(name: string, def: number | string): number;
  getOptionPeriod(name: string, def?: number | string): number | undefined;

  /**
   * Opens a store (Prosody's module:open_store). Type its values with the
   * second parameter: `openStore<"map", Seen>("seen", "map")`.
   */
  openStore<K extends StoreKind, V = never>(name: string, kind: K): StoreOf<K, V>;

  addFeature(ns: string): void;
  addIdentity(category: string, type: string, name?: string): void;

  /** A task at 04:00 every day (never overlapping with its own previous run). */
  daily(name: string, fn: () => void | Promise<void>): void;
  /** A task on a node-cron expression (six fields, seconds first, or the usual five). */
  cron(name: string, expression: string, fn: () => void | Promise<void>): void;
  /**
   * Runs `fn` after `ms` milliseconds of the host's clock (Prosody's
   * add_timer counts seconds: the name says the unit); if it returns a
   * number, runs again that many milliseconds later. On the test kit's
   * ManualClock it fires as the clock advances.
   */
  addTimerMs(ms: number, fn: () => number | void): Timer;

  /** A filter on every session of this host, present and future. */
  addSessionFilter(direction: FilterDirection, fn: StanzaFilter, priority?: number): void;
  /** A filter on one session, removed when this module unloads. */
  addFilter(session: Session, direction: FilterDirection, fn: StanzaFilter, priority?: number): void;

  /** Routes a stanza from the server (its `from` should be this host or one of its JIDs). */
  send(stanza: Element): void;

  /** Runs at unload; a promise returned is waited for before the storage closes. */
  onUnload(fn: () => void | Promise<void>): void;

  /** This host, as modules may use it (accounts, sessions, stores). */
  readonly hostView: HostView;
  /** Another host this server serves (for contacts on it), or `undefined`. */
  hostViewOf(domain: string): HostView | undefined;
  /** The domains this server serves, as configured. */
  servedDomains(): readonly string[];
  /**
   * One value per server for `key`, made by `create` the first time any host's
   * module asks (Prosody's module:shared): state that spans hosts, such as a
   * throttle per client address.
   */
  shared<T>(key: string, create: () => T): T;
  /**
   * Runs `fn` as one storage transaction (nested calls join the outer one);
   * resolves once its writes are durable. Other writers wait while it runs.
   */
  transaction<T>(fn: () => T | Promise<T>): Promise<T>;
  /**
   * Resolves once every write made so far is durable (what "durable" means:
   * the storage's `synchronous`); with a mark from `writeMark()`, rejects if
   * a write made since may have been lost (a commit failed).
   */
  durable(mark?: number): Promise<void>;
  /** A mark for the writes made from now on (see `durable`). */
  writeMark(): number;
  /**
   * The nodes sharing this server's storage (several mamkit processes on one
   * PostgreSQL database; alone otherwise): `exclusive` runs a task on one node
   * at a time, `barrier` has every node run its handlers of a topic.
   */
  readonly cluster: Coordination;
  /**
   * Binds an authenticated session (as its `authUser`) to `resource` on this
   * host; a session bound to that full JID before is closed (`conflict`).
   */
  bindSession(session: Session, resource: string): void;
  /** The identities and features modules added to this host's disco#info. */
  discoInfo(): { readonly identities: readonly Identity[]; readonly features: readonly string[] };

  /**
   * The host object, for what the API above does not cover. No built-in module
   * uses it; it stays for embedders' modules that need more (say what, so it can
   * become a named capability).
   */
  readonly hostObject: Host;
}
