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

/** Per host: does every account have SCRAM-SHA-256 keys? (undefined: not looked yet) */
const sha256Everywhere = new WeakMap<HostView, boolean>();

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
   * a PLAIN login). Looked up once per host, again after a change.
   */
  sha256ForAll(): boolean {
    let all = sha256Everywhere.get(this.host);
    if (all === undefined) {
      all = this.users().every((u) => this.credentials(u, "sha256") !== undefined);
      sha256Everywhere.set(this.host, all);
    }
    return all;
  }

  exists(user: string): boolean {
    return this.store.get(user) !== undefined;
  }

  users(): string[] {
    return this.store.users();
  }

  /** Creates an account; false if it exists already. */
  async create(user: string, password: string): Promise<boolean> {
    if (this.exists(user)) return false;
    await this.setPassword(user, password, true);
    return true;
  }

  async setPassword(user: string, password: string, creating = false): Promise<void> {
    if (!creating && !this.exists(user)) throw new Error(`no account ${user}@${this.host.name}`);
    const salt = randomUUID();
    const iterations = DEFAULT_ITERATIONS;
    const [k1, k256] = await Promise.all([
      deriveKeys(password, salt, iterations, "sha1"),
      deriveKeys(password, salt, iterations, "sha256"),
    ]);
    this.store.set(user, {
      salt,
      iteration_count: iterations,
      stored_key: k1.storedKey.toString("hex"),
      server_key: k1.serverKey.toString("hex"),
      stored_key_sha256: k256.storedKey.toString("hex"),
      server_key_sha256: k256.serverKey.toString("hex"),
    });
    sha256Everywhere.delete(this.host);
  }

  credentials(user: string, hash: ScramHash): ScramCredentials | undefined {
    const a = this.store.get(user);
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
    const c = this.credentials(user, "sha1");
    if (!c) return false;
    const k = await deriveKeys(password, c.salt, c.iterations, "sha1");
    if (!safeEqual(k.storedKey, c.storedKey)) return false;
    if (!this.credentials(user, "sha256")) {
      const k256 = await deriveKeys(password, c.salt, c.iterations, "sha256");
      const a = this.store.get(user)!;
      this.store.set(user, {
        ...a,
        stored_key_sha256: k256.storedKey.toString("hex"),
        server_key_sha256: k256.serverKey.toString("hex"),
      });
      sha256Everywhere.delete(this.host);
    }
    return true;
  }
}

/** The account provider (Prosody's mod_auth_internal_hashed): answers `user-exists`. */
export default defineModule("auth_internal_hashed", (module) => {
  const accounts = new Accounts(module.hostView);
  module.hook("user-exists", ({ username }: { username: string }) => accounts.exists(username));
});
