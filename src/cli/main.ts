// The `mamkit` command: serve, adduser, passwd, deluser, check.
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { Accounts } from "../auth/accounts.js";
import { listen } from "../c2s/listeners.js";
import { parseJid } from "../xmpp/jid.js";
import { loadConfigFile } from "../core/config.js";
import { HostError } from "../core/errors.js";
import { createLogger } from "../core/logger.js";
import { Server } from "../core/server.js";
import { MemoryDriver } from "../storage/memory/driver.js";

const USAGE = `usage: mamkit <command> [--config FILE]

commands:
  serve          run the server
  adduser JID    create an account (the password is asked, or read from standard input)
  passwd JID     change an account's password (the same way)
  deluser JID    delete an account with its archive and all its data
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
  const { command, config, args } = parsed;
  try {
    switch (command) {
      case "help":
        process.stdout.write(`${USAGE}\n`);
        return 0;
      case "check":
        return check(config);
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
    server.stop();
    throw err;
  }
  return new Promise((resolve) => {
    const stop = async (signal: string) => {
      server.log.info({ signal }, "shutting down");
      await listening.close();
      server.stop();
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
      if (!accounts.exists(user)) {
        process.stderr.write(`mamkit deluser: no account ${jid.bare}\n`);
        return 1;
      }
      host.deleteUser(user);
      process.stdout.write(`deleted ${jid.bare} and all its data\n`);
      return 0;
    }
    if (command === "adduser" && accounts.exists(user)) {
      process.stderr.write(`mamkit adduser: ${jid.bare} exists already (use passwd)\n`);
      return 1;
    }
    if (command === "passwd" && !accounts.exists(user)) {
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
    server.stop();
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
    options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  });
  return {
    command: values.help ? "help" : positionals[0],
    args: positionals.slice(1),
    config: values.config ?? "config.example.json",
  };
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
