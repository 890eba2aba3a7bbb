// The server with the modules mamkit ships (src/builtins.ts) loadable by name:
// what the package, the CLI and the test kit start. The core's Server knows no
// feature; this is where the two meet: the network listeners and the account
// store are attached here.
import type { AddressInfo } from "node:net";
import { Accounts } from "./auth/accounts.js";
import { builtinModules } from "./builtins.js";
import { type ListenOptions, type Listening, listen } from "./c2s/listeners.js";
import { isParsedConfig, loadConfigFile, parseConfig } from "./core/config.js";
import { openStorage } from "./storage/index.js";
import { HostError } from "./core/errors.js";
import { loadPlugins } from "./core/plugins.js";
import { Server as CoreServer, type ServerOptions } from "./core/server.js";
import { parseJid } from "./xmpp/jid.js";

export type { ServerOptions, ListenOptions };

/** Where the server listens: every bound address (an ephemeral port shows its number). */
export interface Addresses {
  readonly c2s: readonly AddressInfo[];
  readonly websocket: readonly AddressInfo[];
}

/**
 * The accounts of one host, as Prosody's internal_hashed stores them (SCRAM
 * keys, never the password). Every method resolves once what it wrote is
 * durable; a missing or existing account is a HostError MAMKIT_ERR_ACCOUNT.
 */
export interface AccountsApi {
  readonly host: string;
  exists(user: string): Promise<boolean>;
  /** The localparts of every account. */
  list(): Promise<string[]>;
  /** Creates an account; rejects if it exists. */
  create(user: string, password: string): Promise<void>;
  /** Changes the password of an existing account. */
  setPassword(user: string, password: string): Promise<void>;
  /** Deletes an account with its archive, roster and everything else it stored; its sessions end. */
  delete(user: string): Promise<void>;
}

export class Server extends CoreServer {
  private listening: Listening | undefined;
  private binding: Promise<Addresses> | undefined;

  constructor(opts: ServerOptions) {
    super({ ...opts, builtins: opts.builtins ?? builtinModules });
  }

  /**
   * Builds a server after loading, from the config's `plugin_paths`, the
   * modules it enables that are neither built in nor in `opts.modules`
   * (importing them is asynchronous, which the constructor cannot be).
   */
  static async create(opts: ServerOptions): Promise<Server> {
    const config = isParsedConfig(opts.config) ? opts.config : parseConfig(opts.config);
    const builtins = opts.builtins ?? builtinModules;
    const known = new Set([...builtins, ...(opts.modules ?? [])].map((d) => d.name));
    const plugins = await loadPlugins(config, config.pluginPaths, known);
    // a database server out of reach (or refusing) is said now, before any module loads
    const storage = opts.storage ?? openStorage(config.storage);
    try {
      await storage.ready?.();
    } catch (err) {
      await storage.close().catch(() => undefined);
      throw new HostError("MAMKIT_ERR_STORAGE_OPEN", (err as Error).message, { cause: err });
    }
    return new Server({ ...opts, config, storage, builtins: [...builtins, ...plugins] });
  }

  /** `Server.create` from a JSON config file (paths in it are relative to its folder). */
  static fromFile(path: string, opts: Omit<ServerOptions, "config"> = {}): Promise<Server> {
    return Server.create({ ...opts, config: loadConfigFile(path) });
  }

  /**
   * Opens the client listeners: TCP (with STARTTLS) and WebSocket, on the
   * config's `interfaces`, `c2s_ports` and `websocket_ports` unless given
   * (port 0: a free port, see the result). Resolves with the bound addresses
   * once every one is bound, and only then logs "server started"; if one
   * cannot be bound, none stays open and it rejects (MAMKIT_ERR_LISTEN).
   */
  listen(opts: ListenOptions = {}): Promise<Addresses> {
    if (this.stopped) return Promise.reject(new HostError("MAMKIT_ERR_STOPPED", "listen: the server is stopped"));
    if (this.binding !== undefined) return Promise.reject(new HostError("MAMKIT_ERR_LISTEN", "listen: the server is listening already"));
    this.binding = listen(this, opts).then(
      (l) => {
        this.listening = l;
        const addresses = { c2s: l.c2s, websocket: l.websocket };
        const show = (a: readonly AddressInfo[]) => a.map((x) => (x.family === "IPv6" ? `[${x.address}]:${x.port}` : `${x.address}:${x.port}`));
        const node = this.cluster.shared ? { node: this.cluster.nodeId } : {};
        this.log.info({ hosts: [...this.hosts.keys()], c2s: show(l.c2s), websocket: show(l.websocket), ...node }, "server started");
        return addresses;
      },
      (err: unknown) => {
        this.binding = undefined;
        this.log.error({ err }, "server not started: a listener could not be opened");
        throw err;
      },
    );
    return this.binding;
  }

  /** The bound addresses, once `listen()` resolved. */
  get addresses(): Addresses | undefined {
    return this.listening && { c2s: this.listening.c2s, websocket: this.listening.websocket };
  }

  /**
   * Closes every stream (`system-shutdown`) and listener, unloads the modules
   * and closes the storage once what they write on the way out is durable.
   */
  override async stop(): Promise<void> {
    const binding = this.binding;
    this.binding = undefined;
    this.markStopping();
    await binding?.catch(() => undefined); // (a listen still binding: its failure is its caller's)
    const l = this.listening;
    this.listening = undefined;
    await l?.close();
    return super.stop();
  }

  /** The same as `stop()`. */
  close(): Promise<void> {
    return this.stop();
  }

  /** The accounts of `domain` (the first configured host when omitted). */
  accounts(domain?: string): AccountsApi {
    const host = domain === undefined ? this.hosts.values().next().value! : this.host(domain);
    const store = new Accounts(host);
    const local = (user: string): string => {
      let jid: ReturnType<typeof parseJid>;
      try {
        jid = parseJid(`${user}@${host.name}`);
      } catch (err) {
        throw new HostError("MAMKIT_ERR_ACCOUNT", `${JSON.stringify(user)} is not a valid user name: ${(err as Error).message}`);
      }
      if (jid.local === undefined || jid.resource !== undefined || jid.domain !== host.name || user.includes("@")) {
        throw new HostError("MAMKIT_ERR_ACCOUNT", `${JSON.stringify(user)} is not a user name (give the part before @)`);
      }
      return jid.local;
    };
    const must = async (user: string, exists: boolean): Promise<string> => {
      const u = local(user);
      if ((await store.exists(u)) !== exists) {
        throw new HostError("MAMKIT_ERR_ACCOUNT", exists ? `no account ${u}@${host.name}` : `the account ${u}@${host.name} exists already`);
      }
      return u;
    };
    const password = (p: string): string => {
      if (typeof p !== "string" || p === "") throw new HostError("MAMKIT_ERR_ACCOUNT", "an empty password is refused");
      return p;
    };
    return {
      host: host.name,
      exists: async (user) => store.exists(local(user)),
      list: () => store.users(),
      create: async (user, p) => store.setPassword(await must(user, false), password(p), true),
      setPassword: async (user, p) => store.setPassword(await must(user, true), password(p)),
      delete: async (user) => host.deleteUser(await must(user, true)),
    };
  }
}

/** A server from a config whose modules are all built in or given (see `Server.create` for plugin_paths). */
export function createServer(opts: ServerOptions): Server {
  return new Server(opts);
}

