// Runs one of the Python interop scripts (`ok NAME` / `FAIL NAME: why` per
// line) against a running server and asserts that every expected check passed.
import { execFile, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

export const PYTHON = "/usr/bin/python3";
export const SCRIPT_TIMEOUT_MS = 60_000;

/** Whether Debian's Python can import the module (the package may be missing). */
export function pythonHas(module: string): boolean {
  try {
    execFileSync(PYTHON, ["-c", `import ${module}`], { stdio: "ignore", timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(script: string, args: string[]): Promise<Outcome> {
  const path = fileURLToPath(new URL(script, import.meta.url));
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      ["-W", "ignore::DeprecationWarning", path, ...args],
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

/** Runs `script` against the server at `tcp` (xmpp://127.0.0.1:PORT) and expects every named check to pass. */
export async function expectChecksPass(script: string, tcp: string, expected: string[]): Promise<void> {
  const { hostname, port } = new URL(tcp);
  const out = await run(script, [
    "--host", hostname,
    "--port", port,
    "--domain", "localhost",
    "--alice", "alice:alice-password",
    "--bob", "bob:bob-password",
    "--debug", // the XML exchanged goes to stderr, shown in the assertion message on failure
  ]);
  const lines = out.stdout.split("\n");
  const failed = lines.filter((l) => l.startsWith("FAIL"));
  const passed = new Set(lines.filter((l) => l.startsWith("ok ")).map((l) => l.slice(3).split(" ")[0]));
  const missing = expected.filter((n) => !passed.has(n));
  // on failure, the assertion's message carries the script's output and its XML log
  const transcript = `${script} exited with ${out.code ?? out.signal}\n--- stdout\n${out.stdout}\n--- stderr (XML log)\n${out.stderr}`;
  expect(failed, transcript).toEqual([]);
  expect(missing, transcript).toEqual([]);
  expect(out.signal, transcript).toBeNull();
  expect(out.code, transcript).toBe(0);
}
