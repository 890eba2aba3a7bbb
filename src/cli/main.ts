// The `mamkit` command: finds the command, parses its own options (anything
// else is a usage error), runs it, and reports every failure one way:
// `mamkit <command>: <message>` on standard error. Exit codes: 0 done,
// 1 failed, 2 bad usage (the command's usage follows the message).
import { CliError, type CommandContext, EXIT_FAILED, EXIT_OK, EXIT_USAGE, parseArguments, splitCommand, usageError } from "./args.js";
import { COMMANDS, DEFAULT_CONFIG, GLOBAL_OPTIONS, USAGE, version } from "./usage.js";

type Run = (ctx: CommandContext) => Promise<number>;

// Loaded when run: help, --version and usage errors need none of the server.
const RUN: Record<string, () => Promise<Run>> = {
  serve: async () => (await import("./commands/serve.js")).serve,
  adduser: async () => (await import("./commands/accounts.js")).account,
  passwd: async () => (await import("./commands/accounts.js")).account,
  deluser: async () => (await import("./commands/accounts.js")).account,
  retention: async () => (await import("./commands/retention.js")).retention,
  check: async () => (await import("./commands/check.js")).check,
  migrate: async () => (await import("./commands/migrate.js")).migrate,
  help: async () => help,
};

export async function main(argv: string[]): Promise<number> {
  const valueOptions = Object.values(COMMANDS).flatMap((c) => c.options);
  const { command, rest } = splitCommand(argv, valueOptions);
  const info = command === undefined ? undefined : COMMANDS[command];
  try {
    if (command === undefined) {
      const { options } = parseArguments(rest, GLOBAL_OPTIONS);
      if (options.has("version")) return print(`${version()}\n`);
      if (options.has("help")) return print(`${USAGE}\n`);
      process.stderr.write(`${USAGE}\n`);
      return EXIT_USAGE;
    }
    if (!info) throw usageError(`unknown command ${JSON.stringify(command)}`);
    const args = parseArguments(rest, info.options);
    if (args.options.has("help")) return print(`${info.usage}\n`);
    const p = args.positionals;
    if (p.length > info.args.max) throw usageError(`unexpected argument ${JSON.stringify(p[info.args.max])}`);
    if (p.length < info.args.min) throw usageError(`give ${info.args.want ?? "more arguments"}`);
    const config = args.options.get("config");
    const run = await RUN[command]!();
    return await run({ command, args, config: typeof config === "string" ? config : DEFAULT_CONFIG });
  } catch (err) {
    const prefix = info ? `mamkit ${command}` : "mamkit";
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof CliError && err.exitCode === EXIT_USAGE) {
      process.stderr.write(`${prefix}: ${message}\n${info ? synopsis(command!, info.usage) : USAGE}\n`);
      return EXIT_USAGE;
    }
    // a HostError (config, storage, modules) says what and where; anything else is
    // reported the same way, by its message, never with a stack
    process.stderr.write(`${prefix}: ${message || String(err)}\n`);
    return EXIT_FAILED;
  }
}

/** The usage lines of a command's help (up to its first blank line), and where to read more. */
function synopsis(command: string, usage: string): string {
  const end = usage.indexOf("\n\n");
  return `${end < 0 ? usage : usage.slice(0, end)}\n(mamkit ${command} --help tells more)`;
}

function print(text: string): number {
  process.stdout.write(text);
  return EXIT_OK;
}

/** `mamkit help [COMMAND]`. */
async function help({ args }: CommandContext): Promise<number> {
  const [name] = args.positionals;
  if (name === undefined) return print(`${USAGE}\n`);
  const info = COMMANDS[name];
  if (!info) throw usageError(`unknown command ${JSON.stringify(name)}`);
  return print(`${info.usage}\n`);
}
