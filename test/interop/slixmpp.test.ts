// Interop: the real server on 127.0.0.1 against an independent client
// library, Python slixmpp (test/interop/slixmpp_check.py does the XMPP side:
// login with STARTTLS and SCRAM, XEP-0198 acks and resumption, stanza-ids,
// carbons, MAM paging and errors, disco, ping, roster). Skipped where
// /usr/bin/python3 cannot import slixmpp (Debian: python3-slixmpp).
import { execFile, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Running, startServer } from "../e2e/helpers.js";

const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("./slixmpp_check.py", import.meta.url));
const SCRIPT_TIMEOUT_MS = 60_000;

function hasSlixmpp(): boolean {
  try {
    execFileSync(PYTHON, ["-c", "import slixmpp"], { stdio: "ignore", timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
const slixmppAvailable = hasSlixmpp();

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runCheck(args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      [SCRIPT, ...args],
      { timeout: SCRIPT_TIMEOUT_MS, killSignal: "SIGKILL", maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals | null }) | null;
        resolve({
          code: e === null ? 0 : typeof e.code === "number" ? e.code : null,
          signal: e?.signal ?? null,
          stdout: String(stdout),
          stderr: String(stderr),
        });
      },
    );
  });
}

describe.skipIf(!slixmppAvailable)("interop with slixmpp (Python)", () => {
  let run: Running;
  beforeAll(async () => {
    run = await startServer();
  });
  afterAll(async () => {
    await run?.stop();
  });

  it("passes every check of slixmpp_check.py", async () => {
    const { hostname, port } = new URL(run.tcp); // xmpp://127.0.0.1:PORT
    const out = await runCheck([
      "--host", hostname,
      "--port", port,
      "--domain", "localhost",
      "--alice", "alice:alice-password",
      "--bob", "bob:bob-password",
      "--debug", // the XML exchanged goes to stderr, printed below on failure
    ]);
    const lines = out.stdout.split("\n");
    const failed = lines.filter((l) => l.startsWith("FAIL"));
    const passed = new Set(lines.filter((l) => l.startsWith("ok ")).map((l) => l.slice(3).split(" ")[0]));
    const expected = [
      "login", "login-scram-sha-1", "stream-management", "chat", "carbons", "mam-send", "mam-paging",
      "mam-with", "mam-unknown-field", "mam-forbidden", "disco", "ping", "roster", "resume",
    ];
    const missing = expected.filter((n) => !passed.has(n));
    if (out.code !== 0 || failed.length > 0 || missing.length > 0) {
      console.log(
        `slixmpp_check.py exited with ${out.code ?? out.signal}\n--- stdout\n${out.stdout}\n--- stderr (XML log)\n${out.stderr}`,
      );
    }
    expect(failed).toEqual([]);
    expect(missing).toEqual([]);
    expect(out.signal).toBeNull();
    expect(out.code).toBe(0);
  }, SCRIPT_TIMEOUT_MS + 15_000);
});
