// SCRAM server against a client written here from RFC 5802, independently.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { deriveKeys, type ScramCredentials, type ScramHash, ScramServer } from "../../src/auth/scram.js";

function client(hash: ScramHash, user: string, password: string) {
  const cnonce = randomBytes(12).toString("base64");
  const first = `n=${user},r=${cnonce}`;
  return {
    first: `n,,${first}`,
    final(serverFirst: string, tamper = false) {
      const attrs = Object.fromEntries(serverFirst.split(",").map((kv) => [kv[0], kv.slice(2)]));
      const salted = pbkdf2Sync(password, Buffer.from(attrs.s!, "base64"), Number(attrs.i), hash === "sha1" ? 20 : 32, hash);
      const clientKey = createHmac(hash, salted).update("Client Key").digest();
      const storedKey = createHash(hash).update(clientKey).digest();
      const withoutProof = `c=biws,r=${attrs.r}`;
      const auth = `${first},${serverFirst},${withoutProof}`;
      const sig = createHmac(hash, storedKey).update(auth).digest();
      const proof = Buffer.from(clientKey.map((b, i) => b ^ sig[i]!));
      if (tamper) proof[0]! ^= 1;
      const serverKey = createHmac(hash, salted).update("Server Key").digest();
      return { message: `${withoutProof},p=${proof.toString("base64")}`, verifier: createHmac(hash, serverKey).update(auth).digest("base64") };
    },
  };
}

async function creds(password: string, hash: ScramHash): Promise<ScramCredentials> {
  const salt = "5d1bb03e-7a6f-4c3e-9a28-0b9c1e4f2a77";
  return { salt, iterations: 4096, ...(await deriveKeys(password, salt, 4096, hash)) };
}

describe.each(["sha1", "sha256"] as const)("SCRAM-%s server", (hash) => {
  it("accepts the right password and proves itself to the client", async () => {
    const c = await creds("pencil", hash);
    const server = new ScramServer(hash, async (u) => (u === "user" ? c : undefined));
    const cl = client(hash, "user", "pencil");
    const challenge = await server.step(cl.first);
    expect(challenge.kind).toBe("challenge");
    const fin = cl.final((challenge as { data: string }).data);
    const result = await server.step(fin.message);
    expect(result).toEqual({ kind: "success", data: `v=${fin.verifier}`, username: "user" });
  });

  it("refuses a wrong password, a tampered proof and an unknown user alike", async () => {
    const c = await creds("pencil", hash);
    for (const [user, password, tamper] of [["user", "wrong", false], ["user", "pencil", true], ["nobody", "pencil", false]] as const) {
      const server = new ScramServer(hash, async (u) => (u === "user" ? c : undefined));
      const cl = client(hash, user, password);
      const ch = (await server.step(cl.first)) as { kind: string; data: string };
      expect(ch.kind).toBe("challenge"); // an unknown user is not revealed at this step
      expect(await server.step(cl.final(ch.data, tamper).message)).toEqual({ kind: "failure", condition: "not-authorized" });
    }
  });

  it("refuses malformed messages, channel binding, authzids and nonce changes", async () => {
    const c = await creds("pencil", hash);
    const mk = () => new ScramServer(hash, async () => c);
    expect(await mk().step("garbage")).toMatchObject({ kind: "failure", condition: "malformed-request" });
    expect(await mk().step("p=tls-unique,,n=user,r=abc")).toMatchObject({ kind: "failure", condition: "malformed-request" });
    expect(await mk().step("n,a=admin,n=user,r=abc")).toMatchObject({ kind: "failure", condition: "invalid-authzid" });
    expect(await mk().step("n,,n=us=er,r=abc")).toMatchObject({ kind: "failure", condition: "malformed-request" });
    const s = mk();
    await s.step("n,,n=user,r=abc");
    expect(await s.step("c=biws,r=other,p=AAAA")).toMatchObject({ kind: "failure", condition: "malformed-request", text: "nonce mismatch" });
  });
});
