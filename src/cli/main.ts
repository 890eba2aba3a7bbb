// The `mamkit` command: serve, adduser, passwd, deluser, check.
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { Accounts } from "../auth/accounts.js";
import { listen } from "../c2s/listeners.js";
import { parseJid } from "../xmpp/jid.js";
import { loadConfigFile } from "../core/config.js";
import { HostError } from "../core/errors.js";
import { createLogger } from "../core/logger.js";
import { Server } from "../server.js";
import { MemoryDriver } from "../storage/memory/driver.js";

const USAGE = `usage: mamkit <command> [--config FILE]

commands:
  serve          run the server
  adduser JID    create an account (the password is asked, or read from standard input)
  passwd JID     change an account's password (the same way)
  deluser JID    delete an account with its archive and all its data
  retention --dry-run [--user JID]
                 show per user and client what smart retention would delete, and why
  retention run [--user JID]
                 run a smart retention cleanup now
  check          check the config file: keys, types, module options, module loading

--config FILE defaults to config.example.json.`;

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`mamkit: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { command, config, args, dryRun, user } = parsed;
  try {
    switch (command) {
      case "help":
        process.stdout.write(`${USAGE}\n`);
        return 0;
      case "check":
        return check(config);
      case "retention":
        if (!(dryRun && args.length === 0) && !(args.length === 1 && args[0] === "run" && !dryRun)) {
          process.stderr.write("mamkit retention: use --dry-run, or run\n");
          return 2;
        }
        return await retention(config, dryRun, user);
      case "serve":
        return await serve(config);
      case "adduser":
      case "passwd":
      case "deluser":
        if (args.length !== 1) {
          process.stderr.write(`mamkit ${command}: give one JID, e.g. mamkit ${command} alice@localhost\n`);
          return 2;
        }
        return await account(command, args[0]!, config);
      case undefined:
        process.stderr.write(`${USAGE}\n`);
        return 2;
      default:
        process.stderr.write(`mamkit: unknown command ${JSON.stringify(command)}\n${USAGE}\n`);
        return 2;
    }
  } catch (err) {
    process.stderr.write(`${err instanceof HostError ? err.message : `error: ${(err as Error).message}`}\n`);
    return 1;
  }
}

/** Runs the server until SIGINT/SIGTERM, which close every stream with system-shutdown. */
async function serve(path: string): Promise<number> {
  const server = new Server({ config: loadConfigFile(path) });
  let listening: Awaited<ReturnType<typeof listen>>;
  try {
    listening = await listen(server);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return new Promise((resolve) => {
    const stop = async (signal: string) => {
      server.log.info({ signal }, "shutting down");
      await listening.close();
      await server.stop();
      resolve(0);
    };
    process.once("SIGINT", () => void stop("SIGINT"));
    process.once("SIGTERM", () => void stop("SIGTERM"));
  });
}

async function account(command: "adduser" | "passwd" | "deluser", jidText: string, path: string): Promise<number> {
  let jid: ReturnType<typeof parseJid>;
  try {
    jid = parseJid(jidText);
  } catch (err) {
    process.stderr.write(`mamkit ${command}: ${(err as Error).message}\n`);
    return 2;
  }
  if (!jid.local || jid.resource !== undefined) {
    process.stderr.write(`mamkit ${command}: ${jidText} is not a bare JID like user@host\n`);
    return 2;
  }
  const server = new Server({ config: loadConfigFile(path), logger: createLogger({ level: "warn" }), timers: false });
  try {
    const host = server.hosts.get(jid.domain);
    if (!host) {
      process.stderr.write(`mamkit ${command}: ${jid.domain} is not a host in ${path}\n`);
      return 1;
    }
    const accounts = new Accounts(host);
    const user = jid.local;
    if (command === "deluser") {
      if (!(await accounts.exists(user))) {
        process.stderr.write(`mamkit deluser: no account ${jid.bare}\n`);
        return 1;
      }
      await host.deleteUser(user);
      process.stdout.write(`deleted ${jid.bare} and all its data\n`);
      return 0;
    }
    if (command === "adduser" && (await accounts.exists(user))) {
      process.stderr.write(`mamkit adduser: ${jid.bare} exists already (use passwd)\n`);
      return 1;
    }
    if (command === "passwd" && !(await accounts.exists(user))) {
      process.stderr.write(`mamkit passwd: no account ${jid.bare}\n`);
      return 1;
    }
    const password = await readPassword(`Password for ${jid.bare}: `);
    if (password === "") {
      process.stderr.write(`mamkit ${command}: empty password refused\n`);
      return 1;
    }
    if (command === "adduser") await accounts.create(user, password);
    else await accounts.setPassword(user, password);
    process.stdout.write(`${command === "adduser" ? "created" : "changed the password of"} ${jid.bare}\n`);
    return 0;
  } finally {
    await server.stop();
  }
}

/** Runs (or simulates) a smart retention cleanup on every host that loads the module. */
async function retention(path: string, dryRun: boolean, userJid: string | undefined): Promise<number> {
  let only: { domain: string; user: string } | undefined;
  if (userJid !== undefined) {
    const j = parseJid(userJid);
    if (!j.local) {
      process.stderr.write(`mamkit retention: --user needs a JID like alice@localhost\n`);
      return 2;
    }
    only = { domain: j.domain, user: j.local };
  }
  const server = new Server({ config: loadConfigFile(path), logger: createLogger({ level: "warn" }), timers: false });
  try {
    const hosts = [...server.hosts.values()].filter((h) => h.isLoaded("mam_smart_retention") && (!only || h.name === only.domain));
    if (hosts.length === 0) {
      process.stderr.write("mamkit retention: no host loads mam_smart_retention\n");
      return 1;
    }
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
      })) as import("../retention/index.js").CleanupReport;
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
    return 0;
  } finally {
    await server.stop();
  }
}

/** Asks on a terminal (twice, without echo); reads the first line of standard input otherwise. */
async function readPassword(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    let text = "";
    for await (const chunk of stdin) text += chunk;
    return text.split(/\r?\n/)[0] ?? "";
  }
  const ask = (q: string) =>
    new Promise<string>((resolve) => {
      const rl = createInterface({ input: stdin, output: process.stdout, terminal: true });
      const out = rl as unknown as { _writeToOutput: (s: string) => void };
      let prompted = false;
      out._writeToOutput = (s: string) => {
        if (!prompted) {
          process.stdout.write(s);
          prompted = true;
        }
      };
      rl.question(q, (answer) => {
        rl.close();
        process.stdout.write("\n");
        resolve(answer);
      });
    });
  const first = await ask(prompt);
  const again = await ask("Again: ");
  if (first !== again) throw new Error("the passwords differ");
  return first;
}

function parseOptions(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      config: { type: "string", short: "c" },
      help: { type: "boolean", short: "h" },
      "dry-run": { type: "boolean" },
      user: { type: "string" },
    },
    allowPositionals: true,
  });
  return {
    command: values.help ? "help" : positionals[0],
    args: positionals.slice(1),
    dryRun: values["dry-run"] === true,
    user: values.user,
    config: values.config ?? "config.example.json",
  };
}

/** Loads the config and every module (on throw-away memory storage, timers off), then stops. */
async function check(path: string): Promise<number> {
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
    await server.stop();
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    process.stdout.write(`${path}: OK — hosts: ${hosts.join("; ")}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${err instanceof HostError ? err.message : `error: ${(err as Error).message}`}\n`);
    return 1;
  }
}
