// Accounts as Prosody's internal_hashed stores them, in the `accounts` keyval
// store: salt, iteration_count, stored_key, server_key (SCRAM-SHA-1, hex) —
// never the password. mamkit adds stored_key_sha256 / server_key_sha256 (same
// salt and iterations) for SCRAM-SHA-256; Prosody ignores those keys, and an
// account Prosody created gets them at its first PLAIN login.
import { randomUUID } from "node:crypto";
import type { HostView } from "../core/module.js";
import { defineModule } from "../core/module.js";
import type { KeyValueStore } from "../storage/types.js";
import { deriveKeys, safeEqual, type ScramCredentials, type ScramHash } from "./scram.js";

export const DEFAULT_ITERATIONS = 10000;

/** Per host: does every account have SCRAM-SHA-256 keys? (a promise while it is being looked up) */
const sha256Everywhere = new WeakMap<HostView, boolean | Promise<boolean>>();
/** The last answer looked up, given while a new lookup runs. */
const lastAnswer = new WeakMap<HostView, boolean>();

export class Accounts {
  readonly store: KeyValueStore;

  constructor(readonly host: HostView) {
    this.store = host.openStore("accounts", "keyval");
  }

  /**
   * Whether SCRAM-SHA-256 may be offered: mechanisms are offered before the
   * client names its account, and an account Prosody 0.12 created has SHA-1
   * keys only, so SHA-256 is offered only once every account has its keys
   * (accounts get them when made or when their password is set by mamkit, or at
   * a PLAIN login). Looked up once per host (`lookUpSha256`, at load), again
   * after a change; while it is being looked up, the answer is no.
   */
  sha256ForAll(): boolean {
    const all = sha256Everywhere.get(this.host);
    if (all === undefined) void this.lookUpSha256();
    if (typeof all === "boolean") return all;
    return lastAnswer.get(this.host) === true; // looking it up again: the answer before the change
  }

  /** Looks up whether every account has SCRAM-SHA-256 keys (see sha256ForAll). */
  lookUpSha256(): Promise<boolean> {
    const known = sha256Everywhere.get(this.host);
    if (known !== undefined) return Promise.resolve(known);
    const lookup = (async () => {
      for (const u of await this.users()) if ((await this.credentials(u, "sha256")) === undefined) return false;
      return true;
    })().then(
      (all) => {
        if (sha256Everywhere.get(this.host) === lookup) sha256Everywhere.set(this.host, all);
        lastAnswer.set(this.host, all);
        return all;
      },
      () => {
        if (sha256Everywhere.get(this.host) === lookup) sha256Everywhere.delete(this.host);
        return false;
      },
    );
    sha256Everywhere.set(this.host, lookup);
    return lookup;
  }

  private changed(): void {
    sha256Everywhere.delete(this.host);
    void this.lookUpSha256();
  }

  async exists(user: string): Promise<boolean> {
    return (await this.store.get(user)) !== undefined;
  }

  users(): Promise<string[]> {
    return this.store.users();
  }

  /** Creates an account; false if it exists already. Resolves once it is durable. */
  async create(user: string, password: string): Promise<boolean> {
    if (await this.exists(user)) return false;
    await this.setPassword(user, password, true);
    return true;
  }

  /** Sets the password; resolves once the new keys are durable. */
  async setPassword(user: string, password: string, creating = false): Promise<void> {
    if (!creating && !(await this.exists(user))) throw new Error(`no account ${user}@${this.host.name}`);
    const salt = randomUUID();
    const iterations = DEFAULT_ITERATIONS;
    const [k1, k256] = await Promise.all([
      deriveKeys(password, salt, iterations, "sha1"),
      deriveKeys(password, salt, iterations, "sha256"),
    ]);
    const mark = this.host.writeMark();
    await this.store.set(user, {
      salt,
      iteration_count: iterations,
      stored_key: k1.storedKey.toString("hex"),
      server_key: k1.serverKey.toString("hex"),
      stored_key_sha256: k256.storedKey.toString("hex"),
      server_key_sha256: k256.serverKey.toString("hex"),
    });
    await this.host.durable(mark);
    this.changed();
  }

  async credentials(user: string, hash: ScramHash): Promise<ScramCredentials | undefined> {
    const a = await this.store.get(user);
    if (!a) return undefined;
    const suffix = hash === "sha1" ? "" : "_sha256";
    const stored = a[`stored_key${suffix}`];
    const server = a[`server_key${suffix}`];
    if (typeof a.salt !== "string" || typeof a.iteration_count !== "number" || typeof stored !== "string" || typeof server !== "string") {
      return undefined;
    }
    return {
      salt: a.salt,
      iterations: a.iteration_count,
      storedKey: Buffer.from(stored, "hex"),
      serverKey: Buffer.from(server, "hex"),
    };
  }

  /** Checks a password (PLAIN); fills in missing SCRAM-SHA-256 keys on success. */
  async verify(user: string, password: string): Promise<boolean> {
    const c = await this.credentials(user, "sha1");
    if (!c) return false;
    const k = await deriveKeys(password, c.salt, c.iterations, "sha1");
    if (!safeEqual(k.storedKey, c.storedKey)) return false;
    if (!(await this.credentials(user, "sha256"))) {
      const k256 = await deriveKeys(password, c.salt, c.iterations, "sha256");
      const a = await this.store.get(user);
      if (a === undefined) return false; // deleted meanwhile
      await this.store.set(user, {
        ...a,
        stored_key_sha256: k256.storedKey.toString("hex"),
        server_key_sha256: k256.serverKey.toString("hex"),
      });
      this.changed();
    }
    return true;
  }
}

/** How long an account found is taken to exist without asking the store again (every message asks). */
const EXISTS_CACHE_MS = 10_000;

/** The account provider (Prosody's mod_auth_internal_hashed): answers `user-exists`. */
export default defineModule("auth_internal_hashed", (module) => {
  const accounts = new Accounts(module.hostView);
  void accounts.lookUpSha256();
  // Found accounts are remembered for a few seconds (deleted here: forgotten at once; deleted by
  // another process: seen within EXISTS_CACHE_MS); an account not found is asked again each time.
  // Nodes sharing the storage ask every time: an account deleted on one is gone on all at once.
  const remember = !module.cluster.shared;
  const found = new Map<string, number>();
  let deletions = 0; // a lookup begun before a deletion must not remember the account
  module.hook("user-exists", ({ username }: { username: string }) => {
    const until = found.get(username);
    if (until !== undefined && until > Date.now()) return true;
    const before = deletions;
    return accounts.exists(username).then((exists) => {
      if (remember && exists && before === deletions) found.set(username, Date.now() + EXISTS_CACHE_MS);
      else found.delete(username);
      return exists;
    });
  });
  module.hook("user-deleted", ({ username }: { username: string }) => {
    deletions++;
    found.delete(username);
    return undefined;
  });
});
