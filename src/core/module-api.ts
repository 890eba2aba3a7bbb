// One ModuleApi per (host, module). Everything a module registers through it
// is recorded, so unloading the module releases all of it (Prosody's
// auto-unhook): hooks, timers, scheduled tasks, features, identities, filters.
import type { Element } from "@xmpp/xml";
import type { PayloadOf } from "./event-payloads.js";
import { type Handler, isThenable } from "./events.js";
import type { HostView, Identity, ModuleApi, ModuleDefinition, Timer } from "./module.js";
import type { Host } from "./host.js";
import type { Logger } from "./logger.js";
import {
  checkBoolean,
  checkEnum,
  checkList,
  checkNumber,
  checkPeriod,
  checkString,
  type OptionDecl,
  type OptionValue,
  optionPath,
  readDeclared,
} from "./options.js";
import { checkCronExpression, DAILY, ScheduledJob } from "./scheduler.js";
import { clockTimer, type TimerHandle } from "./clock.js";
import type { Coordination, StoreKind, StoreOf } from "../storage/types.js";
import type { FilterDirection, Session, StanzaFilter } from "./session.js";

/** module.shared(): per server, by key. */
const sharedValues = new WeakMap<object, Map<string, unknown>>();

export class LoadedModule implements ModuleApi {
  readonly log: Logger;
  readonly hooks: [string, Handler][] = [];
  readonly timers = new Set<TimerHandle>();
  readonly jobs: ScheduledJob[] = [];
  readonly features: string[] = [];
  readonly identities: Identity[] = [];
  readonly sessionFilters: [FilterDirection, StanzaFilter, number][] = [];
  readonly sessionFilterSet: [Session, FilterDirection, StanzaFilter][] = [];
  readonly unloaders: (() => void | Promise<void>)[] = [];
  /** Modules on this host that declared a dependency on this one. */
  readonly dependents = new Set<string>();
  unloaded = false;

  constructor(
    readonly def: ModuleDefinition,
    readonly hostObject: Host,
  ) {
    this.log = hostObject.log.child({ mod: def.name });
  }

  get name(): string {
    return this.def.name;
  }
  get host(): string {
    return this.hostObject.name;
  }
  get clock() {
    return this.hostObject.clock;
  }

  hook<E extends string>(event: E, handler: (data: PayloadOf<E>) => unknown, priority = 0): void {
    this.hostObject.events.on(event, handler, priority, this.name);
    this.hooks.push([event, handler]);
  }

  unhook(event: string, handler: Handler): void {
    this.hostObject.events.off(event, handler);
    const i = this.hooks.findIndex(([e, h]) => e === event && h === handler);
    if (i >= 0) this.hooks.splice(i, 1);
  }

  fire<E extends string>(event: E, data?: PayloadOf<E>): unknown {
    return this.hostObject.events.fire(event, data);
  }

  dependsOn(name: string): void {
    this.hostObject.loadDependency(name, this.name);
  }

  // ---- options: host section, else global section, else default ------------------

  private declared: Readonly<Record<string, unknown>> | undefined;

  get options(): Readonly<Record<string, unknown>> {
    if (this.declared === undefined) {
      const values: Record<string, unknown> = {};
      for (const [name, decl] of Object.entries(this.def.options ?? {})) values[name] = this.readOption(name, decl);
      this.declared = Object.freeze(values);
    }
    return this.declared;
  }

  readOption<D extends OptionDecl>(name: string, decl: D): OptionValue<D> {
    return readDeclared(decl, this.getOption(name), this.where(name), this.name) as OptionValue<D>;
  }

  getOption(name: string): unknown {
    return this.hostObject.option(name);
  }

  private where(name: string): string {
    return optionPath(name, this.hostObject.optionSource(name));
  }

  /** This module's declaration of `name`, if it declared it (its default and range apply to the getters). */
  private decl(name: string): OptionDecl | undefined {
    return this.def.options?.[name];
  }

  private fallback<T>(name: string, def: T | undefined): T | undefined {
    return def !== undefined ? def : (this.decl(name)?.default as T | undefined);
  }

  getOptionNumber(name: string, def?: number, range?: { min?: number; max?: number; integer?: boolean }): any {
    const v = this.getOption(name);
    const d = this.decl(name);
    const r: { min?: number; max?: number; integer?: boolean } = range ?? {};
    if (!range && d?.type === "number") {
      if (d.min !== undefined) r.min = d.min;
      if (d.max !== undefined) r.max = d.max;
      if (d.integer !== undefined) r.integer = d.integer;
    }
    return v === undefined ? this.fallback(name, def) : checkNumber(v, this.where(name), this.name, r);
  }
  getOptionBoolean(name: string, def?: boolean): any {
    const v = this.getOption(name);
    return v === undefined ? this.fallback(name, def) : checkBoolean(v, this.where(name), this.name);
  }
  getOptionString(name: string, def?: string): any {
    const v = this.getOption(name);
    return v === undefined ? this.fallback(name, def) : checkString(v, this.where(name), this.name);
  }
  getOptionEnum<T extends string | boolean>(name: string, values: readonly T[], def?: T): T {
    const v = this.getOption(name);
    return v === undefined ? (this.fallback(name, def) as T) : checkEnum(v, values, this.where(name), this.name);
  }
  getOptionList(name: string, def?: readonly string[]): string[] {
    const v = this.getOption(name);
    return v === undefined ? [...(this.fallback(name, def) ?? [])] : checkList(v, this.where(name), this.name).slice();
  }
  getOptionPeriod(name: string, def?: number | string): any {
    const v = this.getOption(name);
    if (v !== undefined) return checkPeriod(v, this.where(name), this.name);
    const d = this.fallback(name, def);
    return d === undefined ? undefined : checkPeriod(d, `${name} (default)`, this.name);
  }

  openStore<K extends StoreKind, V = never>(name: string, kind: K): StoreOf<K, V> {
    return this.hostObject.openStore(name, kind) as StoreOf<K, V>;
  }

  get hostView(): HostView {
    return this.hostObject;
  }

  hostViewOf(domain: string): HostView | undefined {
    return this.hostObject.server.hosts.get(domain);
  }

  servedDomains(): readonly string[] {
    return [...this.hostObject.server.hosts.keys()];
  }

  shared<T>(key: string, create: () => T): T {
    let values = sharedValues.get(this.hostObject.server);
    if (!values) {
      values = new Map();
      sharedValues.set(this.hostObject.server, values);
    }
    if (!values.has(key)) values.set(key, create());
    return values.get(key) as T;
  }

  transaction<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.hostObject.server.storage.transaction(fn);
  }

  durable(mark?: number): Promise<void> {
    return this.hostObject.server.storage.durable(mark);
  }

  writeMark(): number {
    return this.hostObject.server.storage.mark();
  }

  get cluster(): Coordination {
    return this.hostObject.server.cluster;
  }

  bindSession(session: Session, resource: string): void {
    if (session.authUser === undefined) throw new Error("bindSession: the session is not authenticated");
    this.hostObject.bind(session, session.authUser, resource);
  }

  discoInfo(): { readonly identities: readonly Identity[]; readonly features: readonly string[] } {
    return this.hostObject.disco;
  }

  addFeature(ns: string): void {
    this.features.push(ns);
    this.hostObject.disco.addFeature(ns);
  }

  addIdentity(category: string, type: string, name?: string): void {
    const id: Identity = name === undefined ? { category, type } : { category, type, name };
    this.identities.push(id);
    this.hostObject.disco.addIdentity(id);
  }

  daily(name: string, fn: () => void | Promise<void>): void {
    this.cron(name, DAILY, fn);
  }

  cron(name: string, expression: string, fn: () => void | Promise<void>): void {
    checkCronExpression(expression, `module ${this.name}: task "${name}"`);
    const job = new ScheduledJob(name, expression, this.name, fn, this.log);
    this.jobs.push(job);
    this.hostObject.scheduler.add(job);
  }

  /** (Renamed: the unit is in the name now. Said clearly to a JavaScript module still calling it.) */
  addTimer(): never {
    throw new TypeError(
      `module ${this.name}: addTimer(ms, fn) is now addTimerMs(ms, fn) (milliseconds; Prosody's add_timer counts seconds)`,
    );
  }

  addTimerMs(ms: number, fn: () => number | void): Timer {
    let handle: TimerHandle | undefined;
    const arm = (delay: number) => {
      const h: TimerHandle = clockTimer(this.clock, delay, () => {
        this.timers.delete(h);
        let again: number | void;
        try {
          again = fn();
        } catch (err) {
          this.log.error({ err }, "error in timer");
          return;
        }
        if (typeof again === "number" && again >= 0 && !this.unloaded) arm(again);
      });
      handle = h;
      this.timers.add(h);
    };
    arm(ms);
    return {
      cancel: () => {
        if (!handle) return;
        handle.cancel();
        this.timers.delete(handle);
      },
    };
  }

  addSessionFilter(direction: FilterDirection, fn: StanzaFilter, priority = 0): void {
    this.sessionFilters.push([direction, fn, priority]);
    for (const s of this.hostObject.allSessions()) this.addFilter(s, direction, fn, priority);
  }

  addFilter(session: Session, direction: FilterDirection, fn: StanzaFilter, priority = 0): void {
    (direction === "stanzas/in" ? session.filters.in : session.filters.out).add(fn, priority);
    this.sessionFilterSet.push([session, direction, fn]);
  }

  send(stanza: Element): void {
    this.hostObject.server.routeFromHost(this.hostObject, stanza);
  }

  onUnload(fn: () => void | Promise<void>): void {
    this.unloaders.push(fn);
  }

  /** Releases everything this module registered. */
  release(): void {
    this.unloaded = true;
    for (const fn of this.unloaders.reverse()) {
      try {
        const r = fn();
        if (isThenable(r)) {
          this.hostObject.server.unloading(
            Promise.resolve(r).catch((err: unknown) => this.log.error({ err }, "error while unloading")),
          );
        }
      } catch (err) {
        this.log.error({ err }, "error while unloading");
      }
    }
    for (const [e, h] of this.hooks) this.hostObject.events.off(e, h);
    this.hooks.length = 0;
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    for (const j of this.jobs) this.hostObject.scheduler.remove(j);
    for (const f of this.features) this.hostObject.disco.removeFeature(f);
    for (const i of this.identities) this.hostObject.disco.removeIdentity(i);
    for (const [s, dir, fn] of this.sessionFilterSet) {
      (dir === "stanzas/in" ? s.filters.in : s.filters.out).remove(fn);
    }
    this.sessionFilterSet.length = 0;
    this.sessionFilters.length = 0;
  }
}
