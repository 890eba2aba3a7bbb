// `mamkit check`: loads the config and every module (on throw-away memory
// storage, timers off), then stops.
import { loadConfigFile } from "../../core/config.js";
import { createLogger } from "../../core/logger.js";
import { Server } from "../../server.js";
import { MemoryDriver } from "../../storage/memory/driver.js";
import { type CommandContext, EXIT_OK } from "../args.js";

export async function check(ctx: CommandContext): Promise<number> {
  const path = ctx.config;
  const warnings: string[] = [];
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
  const server = await Server.create({ config, logger, storage: new MemoryDriver(), timers: false });
  const hosts = [...server.hosts.values()].map((h) => `${h.name} (${[...h.modules.keys()].join(", ") || "no modules"})`);
  await server.stop();
  for (const w of warnings) process.stderr.write(`mamkit check: warning: ${w}\n`);
  process.stdout.write(`${path}: OK — hosts: ${hosts.join("; ")}\n`);
  return EXIT_OK;
}
