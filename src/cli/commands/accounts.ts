// `mamkit adduser | passwd | deluser JID`.
import { loadConfigFile } from "../../core/config.js";
import { createLogger } from "../../core/logger.js";
import { Server } from "../../server.js";
import { parseJid } from "../../xmpp/jid.js";
import { CliError, type CommandContext, EXIT_OK, usageError } from "../args.js";
import { serverUsing } from "../lock.js";
import { confirm, readPassword } from "../prompt.js";

export async function account(ctx: CommandContext): Promise<number> {
  const command = ctx.command as "adduser" | "passwd" | "deluser";
  const jidText = ctx.args.positionals[0]!; // (one: checked by main)
  let jid: ReturnType<typeof parseJid>;
  try {
    jid = parseJid(jidText);
  } catch (err) {
    throw usageError((err as Error).message);
  }
  if (!jid.local || jid.resource !== undefined) throw usageError(`${jidText} is not a bare JID like user@host`);
  const yes = ctx.args.options.has("yes");
  const ask = command === "deluser" && !yes;
  // refused before anything is opened: nobody could answer the question
  if (ask && !process.stdin.isTTY) {
    throw usageError(`standard input is not a terminal, so nobody can confirm: pass --yes to delete ${jid.bare} without asking`);
  }
  const config = loadConfigFile(ctx.config);
  if (command === "deluser") {
    const using = serverUsing(config.storage);
    if (using) {
      const who = using.pid !== undefined ? `mamkit serve (pid ${using.pid}, since ${using.started})` : "a running mamkit serve";
      process.stderr.write(
        `mamkit deluser: warning: ${who} is using this database (${using.path} is locked); ` +
          `${jid.bare}'s connected sessions stay connected, and that server may write some of its data back (tracking, roster); stop the server first\n`,
      );
    }
  }
  const server = await Server.create({ config, logger: createLogger({ level: "warn" }), timers: false });
  try {
    const host = server.hosts.get(jid.domain);
    if (!host) throw new CliError(`${jid.domain} is not a host in ${ctx.config}`);
    const accounts = server.accounts(host.name);
    const user = jid.local;
    if (command === "deluser") {
      if (!(await accounts.exists(user))) throw new CliError(`no account ${jid.bare}`);
      if (ask) {
        const { count } = await host.openStore("archive", "archive").summary(user);
        const ok = await confirm(`Delete ${jid.bare} and all its data (archive of ${count} message(s), roster, prefs, retention tracking, ...)?`);
        if (!ok) throw new CliError(`${jid.bare} not deleted`);
      }
      await accounts.delete(user);
      process.stdout.write(`deleted ${jid.bare} and all its data\n`);
      return EXIT_OK;
    }
    if (command === "adduser" && (await accounts.exists(user))) throw new CliError(`${jid.bare} exists already (use passwd)`);
    if (command === "passwd" && !(await accounts.exists(user))) throw new CliError(`no account ${jid.bare}`);
    const password = await readPassword(`Password for ${jid.bare}: `);
    if (password === "") throw new CliError("empty password refused");
    if (command === "adduser") await accounts.create(user, password);
    else await accounts.setPassword(user, password);
    process.stdout.write(`${command === "adduser" ? "created" : "changed the password of"} ${jid.bare}\n`);
    return EXIT_OK;
  } finally {
    await server.stop();
  }
}
