// `mamkit retention --dry-run | run [--user JID]`: a smart retention cleanup,
// or what one would do, on every host that loads the module.
import { loadConfigFile } from "../../core/config.js";
import { createLogger } from "../../core/logger.js";
import type { CleanupReport } from "../../retention/index.js";
import { Server } from "../../server.js";
import { parseJid } from "../../xmpp/jid.js";
import { CliError, type CommandContext, EXIT_OK, usageError } from "../args.js";

export async function retention(ctx: CommandContext): Promise<number> {
  const dryRun = ctx.args.options.has("dry-run");
  const p = ctx.args.positionals;
  if (p.length > 1 || (p.length === 1 && p[0] !== "run")) throw usageError(`unexpected argument ${JSON.stringify(p[p[0] === "run" ? 1 : 0])}`);
  const run = p[0] === "run";
  if (run && dryRun) throw usageError("use --dry-run or run, not both");
  if (!run && !dryRun) throw usageError("use --dry-run, or run");
  let only: { domain: string; user: string } | undefined;
  const userJid = ctx.args.options.get("user");
  if (typeof userJid === "string") {
    let j: ReturnType<typeof parseJid>;
    try {
      j = parseJid(userJid);
    } catch (err) {
      throw usageError(`--user: ${(err as Error).message}`);
    }
    if (!j.local || j.resource !== undefined) throw usageError("--user needs a bare JID like alice@localhost");
    only = { domain: j.domain, user: j.local };
  }
  const server = new Server({ config: loadConfigFile(ctx.config), logger: createLogger({ level: "warn" }), timers: false });
  try {
    const hosts = [...server.hosts.values()].filter((h) => h.isLoaded("mam_smart_retention") && (!only || h.name === only.domain));
    if (hosts.length === 0) throw new CliError("no host loads mam_smart_retention");
    const tty = process.stderr.isTTY === true;
    for (const host of hosts) {
      const progress = (done: number, total: number) => {
        if (!tty || dryRun) return;
        const width = 30;
        const fill = total === 0 ? width : Math.round((done / total) * width);
        process.stderr.write(`\r${host.name} [${"#".repeat(fill)}${" ".repeat(width - fill)}] ${done}/${total} users`);
      };
      const report = (await host.events.fire("smart-retention-run", {
        dryRun,
        // a server may be running on this database: its connected clients are invisible from here
        keepClients: true,
        ...(only ? { user: only.user } : {}),
        progress,
      })) as CleanupReport;
      if (tty && !dryRun) process.stderr.write("\n");
      for (const u of report.users) {
        if (!dryRun && u.deleted === 0 && !u.error) continue;
        process.stdout.write(`${u.user}@${host.name}: ${dryRun ? "would delete" : "deleted"} ${u.deleted} message(s) (strategy ${report.strategy})${u.error ? ` — error: ${u.error}` : ""}\n`);
        if (!dryRun) continue;
        for (const c of u.clients) {
          const ivs = c.delivered.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(", ") || "nothing";
          process.stdout.write(
            `  client ${c.client}: acknowledged positions ${ivs}; first seen at position ${c.firstSeen}; last seen ${new Date(c.lastSeen).toISOString()}\n`,
          );
        }
      }
      process.stdout.write(`${host.name}: ${dryRun ? "would delete" : "deleted"} ${report.deleted} message(s) for ${report.users.length} tracked user(s) in ${report.ms} ms\n`);
    }
    return EXIT_OK;
  } finally {
    await server.stop();
  }
}
