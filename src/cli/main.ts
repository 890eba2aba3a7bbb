// The `mamkit` command. This release has `check`; `serve`, the account
// commands and `retention` come with the network server.
import { parseArgs } from "node:util";
import { loadConfigFile } from "../core/config.js";
import { HostError } from "../core/errors.js";
import { createLogger } from "../core/logger.js";
import { Server } from "../core/server.js";
import { MemoryDriver } from "../storage/memory/driver.js";

const USAGE = `usage: mamkit <command> [--config FILE]

commands:
  check     check the config file: keys, types, module options, module loading
            (default file: config.example.json)`;

export function main(argv: string[]): number {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`mamkit: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { command, config } = parsed;
  if (command === "help" || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command !== "check") {
    process.stderr.write(`mamkit: unknown command ${JSON.stringify(command)}\n${USAGE}\n`);
    return 2;
  }
  return check(config);
}

function parseOptions(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  });
  return { command: values.help ? "help" : positionals[0], config: values.config ?? "config.example.json" };
}

/** Loads the config and every module (on throw-away memory storage, timers off), then stops. */
function check(path: string): number {
  const warnings: string[] = [];
  try {
    const config = loadConfigFile(path);
    const logger = createLogger({
      level: "warn",
      destination: {
        write: (line: string) => {
          const rec = JSON.parse(line) as { msg?: string; key?: string };
          warnings.push(rec.key ? `${rec.msg}: ${rec.key}` : String(rec.msg));
        },
      },
    });
    const server = new Server({ config, logger, storage: new MemoryDriver(), timers: false });
    const hosts = [...server.hosts.values()].map((h) => `${h.name} (${[...h.modules.keys()].join(", ") || "no modules"})`);
    server.stop();
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    process.stdout.write(`${path}: OK — hosts: ${hosts.join("; ")}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${err instanceof HostError ? err.message : `error: ${(err as Error).message}`}\n`);
    return 1;
  }
}
