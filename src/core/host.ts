// One served domain (Prosody's VirtualHost): its event bus, its modules, its
// sessions, its disco features. Created and owned by the Server.
import type { Element } from "@xmpp/xml";
import { EventBus, HandlerFailure, isThenable } from "./events.js";
import { HostError } from "./errors.js";
import type { HostView, Identity, ModuleDefinition } from "./module.js";
import { LoadedModule } from "./module-api.js";
import type { Logger } from "./logger.js";
import type { Server } from "./server.js";
import type { StoreKind, StoreOf } from "../storage/types.js";
import { parseJid } from "../xmpp/jid.js";
import { Session, type SessionOwner, type SessionSink } from "./session.js";
import { registerCoreHandlers } from "./delivery.js";

/** Disco features and identities of a host, reference-counted so modules can share them. */
export class DiscoRegistry {
  private readonly featureCounts = new Map<string, number>();
  private readonly identityList: Identity[] = [];

  addFeature(ns: string): void {
    this.featureCounts.set(ns, (this.featureCounts.get(ns) ?? 0) + 1);
  }
  removeFeature(ns: string): void {
    const n = (this.featureCounts.get(ns) ?? 0) - 1;
    if (n <= 0) this.featureCounts.delete(ns);
    else this.featureCounts.set(ns, n);
  }
  addIdentity(id: Identity): void {
    this.identityList.push(id);
  }
  removeIdentity(id: Identity): void {
    const i = this.identityList.indexOf(id);
    if (i >= 0) this.identityList.splice(i, 1);
  }
  get features(): string[] {
    return [...this.featureCounts.keys()].sort();
  }
  get identities(): Identity[] {
    return this.identityList.slice();
  }
}

export interface OpenSessionOptions {
  username: string;
  resource?: string;
  clientId?: string;
}

export class Host implements SessionOwner, HostView {
  readonly events: EventBus;
  readonly log: Logger;
  readonly modules = new Map<string, LoadedModule>();
  readonly disco = new DiscoRegistry();
  /** username → resource → session */
  readonly userSessions = new Map<string, Map<string, Session>>();
  readonly fullSessions = new Map<string, Session>();
  private readonly loading: string[] = [];

  constructor(
    readonly server: Server,
    readonly name: string,
    private readonly section: Readonly<Record<string, unknown>>,
  ) {
    this.log = server.log.child({ host: name });
    this.events = new EventBus(this.log);
    registerCoreHandlers(this);
  }

  get clock() {
    return this.server.clock;
  }
  get scheduler() {
    return this.server.scheduler;
  }

  /** An option for this host: the host's section, else the global section. */
  option(name: string): unknown {
    const v = this.section[name];
    return v !== undefined ? v : this.server.config.global[name];
  }

  /** The host name if the host's section sets `name`, else undefined (the global section). */
  optionSource(name: string): string | undefined {
    return this.section[name] !== undefined ? this.name : undefined;
  }

  openStore<K extends StoreKind, V = never>(name: string, kind: K): StoreOf<K, V> {
    const d = this.server.storage;
    switch (kind) {
      case "keyval":
        return d.keyval(this.name, name) as StoreOf<K, V>;
      case "map":
        return d.map(this.name, name) as unknown as StoreOf<K, V>;
      case "archive":
        return d.archive(this.name, name) as StoreOf<K, V>;
    }
    throw new HostError("MAMKIT_ERR_STORAGE", `unknown store kind ${JSON.stringify(kind)} (keyval, map or archive)`);
  }

  // ---- modules ----------------------------------------------------------------

  isLoaded(name: string): boolean {
    return this.modules.has(name);
  }

  /** Loads a module (by name, or a definition from the embedding application). */
  loadModule(mod: string | ModuleDefinition): LoadedModule {
    const def = typeof mod === "string" ? this.server.moduleDefinition(mod) : mod;
    if (this.loading.includes(def.name)) {
      throw new HostError(
        "MAMKIT_ERR_MODULE_CYCLE",
        `modules depend on each other in a circle: ${[...this.loading, def.name].join(" → ")}`,
      );
    }
    const existing = this.modules.get(def.name);
    if (existing) return existing;
    this.loading.push(def.name);
    const m = new LoadedModule(def, this);
    try {
      for (const dep of def.dependencies ?? []) this.loadDependency(dep, def.name);
      this.modules.set(def.name, m);
      const unload = def.load(m);
      if (typeof unload === "function") m.onUnload(unload);
    } catch (err) {
      this.modules.delete(def.name);
      m.release();
      if (err instanceof HostError) throw err;
      throw new HostError(
        "MAMKIT_ERR_MODULE_LOAD",
        `module ${def.name} failed to load on ${this.name}: ${(err as Error)?.message ?? String(err)}`,
        { cause: err },
      );
    } finally {
      this.loading.pop();
    }
    this.log.debug({ mod: def.name }, "module loaded");
    this.events.fire("module-loaded", { module: def.name, host: this.name });
    return m;
  }

  /** Loads `name` for `dependent` (Prosody's module:depends). */
  loadDependency(name: string, dependent: string): void {
    const m = this.loadModule(name);
    m.dependents.add(dependent);
  }

  /**
   * Unloads a module: every hook, timer, task, feature, identity and filter it
   * registered goes with it. Modules that depend on it are unloaded first.
   */
  unloadModule(name: string): boolean {
    const m = this.modules.get(name);
    if (!m) return false;
    for (const dep of m.dependents) {
      if (this.modules.has(dep)) {
        this.log.info({ mod: dep, dependency: name }, "unloading module that depends on a module being unloaded");
        this.unloadModule(dep);
      }
    }
    this.modules.delete(name);
    for (const other of this.modules.values()) other.dependents.delete(name);
    m.release();
    this.events.fire("module-unloaded", { module: name, host: this.name });
    return true;
  }

  unloadAll(): void {
    for (const name of [...this.modules.keys()].reverse()) this.unloadModule(name);
  }

  // ---- accounts -----------------------------------------------------------------

  /**
   * Does the account exist? Asks the `user-exists` event ({ username }); with
   * no module answering (no account store loaded), every user of a served host exists.
   */
  async userExists(username: string): Promise<boolean> {
    let r = this.events.fireAsync("user-exists", { username });
    if (isThenable(r)) r = await r;
    if (r instanceof HandlerFailure) throw r.error;
    return r === undefined ? true : r === true;
  }

  /**
   * Deletes an account's data: fires `user-deleted` ({ username }), then
   * removes all it stored; resolves once that is durable.
   */
  async deleteUser(username: string): Promise<void> {
    for (const s of [...(this.userSessions.get(username)?.values() ?? [])]) s.close("account deleted");
    const storage = this.server.storage;
    const mark = storage.mark();
    let r = this.events.fireAsync("user-deleted", { username });
    if (isThenable(r)) r = await r;
    if (r instanceof HandlerFailure) throw r.error;
    await storage.deleteUser(this.name, username);
    await storage.durable(mark);
  }

  // ---- sessions -----------------------------------------------------------------

  *allSessions(): IterableIterator<Session> {
    yield* this.fullSessions.values();
  }

  sessionFor(fullJid: string): Session | undefined {
    return this.fullSessions.get(fullJid);
  }

  sessionsOf(username: string): ReadonlyMap<string, Session> | undefined {
    return this.userSessions.get(username);
  }

  /**
   * Creates a session bound to `username@host/resource` (a random resource when
   * none is given). A session already bound to that full JID is replaced, as
   * Prosody does by default.
   */
  openSession(sink: SessionSink, opts: OpenSessionOptions): Session {
    const o: { authUser: string; clientId?: string } = { authUser: opts.username };
    if (opts.clientId !== undefined) o.clientId = opts.clientId;
    const session = new Session(this, sink, this.log, o);
    this.bind(session, opts.username, opts.resource);
    return session;
  }

  bind(session: Session, username: string, resource?: string): void {
    const bare = parseJid(`${username}@${this.name}`);
    if (bare.local === undefined || bare.domain !== this.name) {
      throw new HostError("MAMKIT_ERR_HOST_UNKNOWN", `cannot bind ${username} on ${this.name}`);
    }
    const full = bare.withResource(resource ?? `mamkit-${session.id}`);
    const old = this.fullSessions.get(full.full);
    if (old) old.close("conflict");
    session.jid = full;
    const local = full.local!;
    let map = this.userSessions.get(local);
    if (!map) {
      map = new Map();
      this.userSessions.set(local, map);
    }
    map.set(full.resource!, session);
    this.fullSessions.set(full.full, session);
    for (const m of this.modules.values()) {
      for (const [dir, fn, prio] of m.sessionFilters) m.addFilter(session, dir, fn, prio);
    }
    this.events.fire("resource-bind", { session });
  }

  transportLost(session: Session, reason: string): boolean {
    return this.events.fire("session-transport-lost", { session, reason }) === true;
  }

  /**
   * A session that authenticated as `username` but has no resource: it can
   * send stream-level elements (e.g. an XEP-0198 <resume/>) and nothing else
   * until it binds.
   */
  openUnboundSession(sink: SessionSink, opts: { username: string; clientId?: string }): Session {
    const o: { authUser: string; clientId?: string } = { authUser: opts.username };
    if (opts.clientId !== undefined) o.clientId = opts.clientId;
    return new Session(this, sink, this.log, o);
  }

  /** False for a top-level element that is no stanza and that nothing handled (a promise when a handler waits). */
  receiveFrom(session: Session, stanza: Element): boolean | Promise<boolean> {
    return this.server.router.fromSession(session, stanza);
  }

  writeMark(): number {
    return this.server.storage.mark();
  }

  durable(mark?: number): Promise<void> {
    return this.server.storage.durable(mark);
  }

  detach(session: Session, reason: string | undefined): void {
    const jid = session.jid;
    if (!jid) return;
    this.events.fire("pre-resource-unbind", { session, error: reason });
    if (this.fullSessions.get(jid.full) === session) {
      this.fullSessions.delete(jid.full);
      const map = this.userSessions.get(jid.local!);
      map?.delete(jid.resource!);
      if (map && map.size === 0) this.userSessions.delete(jid.local!);
    }
    for (const m of this.modules.values()) {
      for (let i = m.sessionFilterSet.length - 1; i >= 0; i--) {
        if (m.sessionFilterSet[i]![0] === session) m.sessionFilterSet.splice(i, 1);
      }
    }
    this.events.fire("resource-unbind", { session, error: reason });
  }
}
