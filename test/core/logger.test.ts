// Logs: human-readable on a terminal (or when asked), JSON otherwise.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = new URL("../..", import.meta.url).pathname;

/** Logs one line from a fresh process with createLogger({ format }), stdout a pipe (not a terminal). */
function logLine(format: string | undefined, env: Record<string, string> = {}): string {
  const code = `import { createLogger } from ${JSON.stringify(join(root, "src/core/logger.ts"))};
    createLogger(${format === undefined ? "" : JSON.stringify({ format })}).info({ port: 5222 }, "server started");`;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, MAMKIT_LOG_FORMAT: "", ...env },
  });
  expect(r.stderr).toBe("");
  return r.stdout.trim();
}

describe("log format", () => {
  it("is JSON when standard output is not a terminal", () => {
    expect(JSON.parse(logLine(undefined))).toMatchObject({ level: 30, msg: "server started", port: 5222 });
  });

  it("is one readable line with format pretty, or MAMKIT_LOG_FORMAT=pretty", () => {
    for (const line of [logLine("pretty"), logLine("json", { MAMKIT_LOG_FORMAT: "pretty" })]) {
      expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: server started {"port":5222}$/);
      expect(line.split("\n")).toHaveLength(1);
    }
  });
});
