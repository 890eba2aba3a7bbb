// SCRAM (RFC 5802, RFC 7677) on the server side, with Prosody's
// internal_hashed credentials: salt, iteration count, StoredKey, ServerKey.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

const pbkdf2Async = promisify(pbkdf2);

export type ScramHash = "sha1" | "sha256";
export const SCRAM_MECHANISMS: Record<string, ScramHash> = { "SCRAM-SHA-256": "sha256", "SCRAM-SHA-1": "sha1" };
const KEY_LEN: Record<ScramHash, number> = { sha1: 20, sha256: 32 };

export interface ScramKeys {
  storedKey: Buffer;
  serverKey: Buffer;
}

export interface ScramCredentials extends ScramKeys {
  salt: string;
  iterations: number;
}

export async function deriveKeys(password: string, salt: string, iterations: number, hash: ScramHash): Promise<ScramKeys> {
  const salted = await pbkdf2Async(Buffer.from(password.normalize("NFKC"), "utf8"), Buffer.from(salt, "utf8"), iterations, KEY_LEN[hash], hash);
  const clientKey = createHmac(hash, salted).update("Client Key").digest();
  return {
    storedKey: createHash(hash).update(clientKey).digest(),
    serverKey: createHmac(hash, salted).update("Server Key").digest(),
  };
}

export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** RFC 5802 saslname: "=2C" is ",", "=3D" is "="; any other "=" is an error. */
function decodeSaslName(s: string): string | undefined {
  if (/=(?!2C|3D)/.test(s)) return undefined;
  return s.replace(/=2C/g, ",").replace(/=3D/g, "=");
}

export type ScramStep =
  | { kind: "challenge"; data: string }
  | { kind: "success"; data: string; username: string }
  | { kind: "failure"; condition: "not-authorized" | "malformed-request" | "invalid-authzid" | "encryption-required" | "temporary-auth-failure"; text?: string };

/**
 * One server-side SCRAM exchange. `lookup(username)` returns the stored
 * credentials for this hash, or undefined for an unknown user (the exchange
 * then fails as a wrong password would, at the same step).
 */
export class ScramServer {
  private state: "first" | "final" | "done" = "first";
  private username = "";

  /** The (prepared) username the client named, once its first message was read: failures are throttled per account. */
  get user(): string | undefined {
    return this.username === "" ? undefined : this.username;
  }
  private nonce = "";
  private gs2 = "";
  private clientFirstBare = "";
  private serverFirst = "";
  private creds: ScramCredentials | undefined;

  constructor(
    readonly hash: ScramHash,
    private readonly lookup: (username: string) => Promise<ScramCredentials | undefined>,
  ) {}

  async step(message: string): Promise<ScramStep> {
    if (this.state === "first") return this.first(message);
    if (this.state === "final") return this.final(message);
    return { kind: "failure", condition: "malformed-request", text: "exchange already finished" };
  }

  private async first(msg: string): Promise<ScramStep> {
    // gs2-header: "n,," or "y,," (no channel binding here); "p=" is refused
    const m = /^([ny]),(a=[^,]*)?,(n=([^,]*),r=([^,]+)(,.*)?)$/.exec(msg);
    if (!m) {
      if (msg.startsWith("p=")) return { kind: "failure", condition: "malformed-request", text: "channel binding is not supported" };
      return { kind: "failure", condition: "malformed-request", text: "bad client-first-message" };
    }
    if (m[2] !== undefined && m[2] !== "a=") {
      return { kind: "failure", condition: "invalid-authzid", text: "authorization identities are not supported" };
    }
    const name = decodeSaslName(m[4]!);
    if (name === undefined || name === "") return { kind: "failure", condition: "malformed-request", text: "bad username" };
    this.gs2 = `${m[1]},${m[2] ?? ""},`;
    this.clientFirstBare = m[3]!;
    this.username = name;
    this.creds = await this.lookup(name);
    // an unknown user gets a plausible challenge all the same
    const salt = this.creds?.salt ?? createHash("sha256").update(`mamkit-unknown-user:${name}`).digest("hex").slice(0, 36);
    const iterations = this.creds?.iterations ?? 10000;
    this.nonce = m[5]! + randomBytes(18).toString("base64");
    this.serverFirst = `r=${this.nonce},s=${Buffer.from(salt, "utf8").toString("base64")},i=${iterations}`;
    this.state = "final";
    return { kind: "challenge", data: this.serverFirst };
  }

  private final(msg: string): ScramStep {
    this.state = "done";
    const m = /^(c=([^,]*),r=([^,]*)(?:,.*)?),p=([^,]+)$/.exec(msg);
    if (!m) return { kind: "failure", condition: "malformed-request", text: "bad client-final-message" };
    if (m[3] !== this.nonce) return { kind: "failure", condition: "malformed-request", text: "nonce mismatch" };
    if (Buffer.from(m[2]!, "base64").toString("utf8") !== this.gs2) {
      return { kind: "failure", condition: "malformed-request", text: "channel binding data mismatch" };
    }
    if (!this.creds) return { kind: "failure", condition: "not-authorized" };
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${m[1]}`;
    const proof = Buffer.from(m[4]!, "base64");
    const signature = createHmac(this.hash, this.creds.storedKey).update(authMessage).digest();
    if (proof.length !== signature.length) return { kind: "failure", condition: "not-authorized" };
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i]! ^ signature[i]!;
    if (!safeEqual(createHash(this.hash).update(clientKey).digest(), this.creds.storedKey)) {
      return { kind: "failure", condition: "not-authorized" };
    }
    const verifier = createHmac(this.hash, this.creds.serverKey).update(authMessage).digest("base64");
    return { kind: "success", data: `v=${verifier}`, username: this.username };
  }
}
