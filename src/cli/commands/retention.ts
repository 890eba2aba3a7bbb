// `mamkit retention --dry-run | run [--user JID] [--json]`: a smart retention
// cleanup, or (dry run) what one would do and why, on every host that loads
// the module.
import type { Host } from "../../core/host.js";
import { createLogger } from "../../core/logger.js";
import type { CleanupReport } from "../../retention/index.js";
import { Server } from "../../server.js";
import { parseJid } from "../../xmpp/jid.js";
import { CliError, type CommandContext, EXIT_OK, usageError } from "../args.js";
import { reportJson, reportText } from "./retention-output.js";

const MODULE = "mam_smart_retention";

/** --user as { domain, user }: a bare JID. */
function userOption(ctx: CommandContext): { domain: string; user: string; bare: string } | undefined {
  const text = ctx.args.options.get("user");
  if (typeof text !== "string") return undefined;
  let j: ReturnType<typeof parseJid>;
  try {
    j = parseJid(text);
  } catch (err) {
    throw usageError(`--user: ${(err as Error).message}`);
  }
  if (!j.local || j.resource !== undefined) throw usageError("--user needs a bare JID like alice@localhost");
  return { domain: j.domain, user: j.local, bare: j.bare };
}

export async function retention(ctx: CommandContext): Promise<number> {
  const dryRun = ctx.args.options.has("dry-run");
  const json = ctx.args.options.has("json");
  const p = ctx.args.positionals;
  if (p.length === 1 && p[0] !== "run") throw usageError(`unexpected argument ${JSON.stringify(p[0])}`);
  const run = p[0] === "run";
  if (run && dryRun) throw usageError("use --dry-run or run, not both");
  if (!run && !dryRun) throw usageError("use --dry-run, or run");
  const only = userOption(ctx);
  const server = await Server.fromFile(ctx.config, { logger: createLogger({ level: "warn" }), timers: false });
  try {
    let hosts: Host[];
    if (only) {
      const host = server.hosts.get(only.domain);
      if (!host) throw new CliError(`${only.domain} is not a host in ${ctx.config}`);
      if (!host.isLoaded(MODULE)) throw new CliError(`${only.domain} does not load ${MODULE}`);
      // (with internal_hashed accounts; with authentication "none" every user of a host exists)
      if (!(await host.userExists(only.user))) throw new CliError(`no account ${only.bare}`);
      hosts = [host];
    } else {
      hosts = [...server.hosts.values()].filter((h) => h.isLoaded(MODULE));
      if (hosts.length === 0) throw new CliError(`no host loads ${MODULE}`);
    }
    const tty = process.stderr.isTTY === true && !json;
    const reports: CleanupReport[] = [];
    for (const host of hosts) {
      const progress = (done: number, total: number) => {
        if (!tty || dryRun) return;
        const width = 30;
        const fill = total === 0 ? width : Math.round((done / total) * width);
        process.stderr.write(`\r${host.name} [${"#".repeat(fill)}${" ".repeat(width - fill)}] ${done}/${total} users`);
      };
      const report = (await host.events.fire("smart-retention-run", {
        dryRun,
        explain: dryRun,
        // a server may be running on this database: its connected clients are invisible from here
        keepClients: true,
        ...(only ? { user: only.user } : {}),
        progress,
      })) as CleanupReport;
      if (tty && !dryRun) process.stderr.write("\n");
      reports.push(report);
      if (!json) process.stdout.write(reportText(report));
    }
    if (json) process.stdout.write(reportJson(reports, dryRun));
    return EXIT_OK;
  } finally {
    await server.stop();
  }
}
