// Argument parsing of the `mamkit` command: which command, then that
// command's own options and arguments. Anything a command does not take is a
// usage error (exit 2), options of other commands included.

/** An option a command takes: a flag, or one that takes a value. */
export interface OptionSpec {
  name: string;
  short?: string;
  value?: boolean;
}

/** Exit codes: 0 done, 1 failed, 2 bad usage. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** A failure to report as `mamkit <command>: <message>`; exit 2 also prints the command's usage. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: typeof EXIT_FAILED | typeof EXIT_USAGE = EXIT_FAILED,
  ) {
    super(message);
    this.name = "CliError";
  }
}

export const usageError = (message: string) => new CliError(message, EXIT_USAGE);

export interface Parsed {
  /** Option values by long name: true for a flag, the string for a value option. */
  options: Map<string, string | true>;
  positionals: string[];
}

/**
 * Parses `argv` against `specs`: `--name`, `--name=value`, `--name value`,
 * `-s`, `-s value`, `-svalue`, grouped flags (`-hy`), `--` ends the options.
 * An option given twice keeps the last value.
 */
export function parseArguments(argv: readonly string[], specs: readonly OptionSpec[]): Parsed {
  const options = new Map<string, string | true>();
  const positionals: string[] = [];
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const spec = byLong.get(name);
      if (!spec) throw usageError(`unknown option --${name}`);
      if (!spec.value) {
        if (eq >= 0) throw usageError(`--${name} takes no value`);
        options.set(name, true);
      } else if (eq >= 0) {
        options.set(name, arg.slice(eq + 1));
      } else {
        const v = argv[++i];
        if (v === undefined) throw usageError(`--${name} needs a value`);
        options.set(name, v);
      }
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) {
      for (let k = 1; k < arg.length; k++) {
        const spec = byShort.get(arg[k]!);
        if (!spec) throw usageError(`unknown option -${arg[k]}`);
        if (!spec.value) {
          options.set(spec.name, true);
          continue;
        }
        const rest = arg.slice(k + 1);
        const v = rest !== "" ? rest : argv[++i];
        if (v === undefined) throw usageError(`-${spec.short} (--${spec.name}) needs a value`);
        options.set(spec.name, v);
        break;
      }
      continue;
    }
    positionals.push(arg);
  }
  return { options, positionals };
}

/**
 * The command word: the first argument that is neither an option nor the
 * value of one (`mamkit -c x.json check` names check). Returns it and the
 * arguments without it.
 */
export function splitCommand(argv: readonly string[], valueOptions: readonly OptionSpec[]): { command?: string; rest: string[] } {
  const takesValue = new Set(valueOptions.filter((s) => s.value).flatMap((s) => [`--${s.name}`, ...(s.short ? [`-${s.short}`] : [])]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") break;
    if (takesValue.has(arg)) {
      i++;
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) continue;
    return { command: arg, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { rest: [...argv] };
}

/** What a command gets: its parsed arguments and the config file to read. */
export interface CommandContext {
  command: string;
  args: Parsed;
  config: string;
}
