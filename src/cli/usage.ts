// What each command takes and its usage text; the version from package.json.
import { readFileSync } from "node:fs";
import type { OptionSpec } from "./args.js";

export const DEFAULT_CONFIG = "config.example.json";

const CONFIG: OptionSpec = { name: "config", short: "c", value: true };
const HELP: OptionSpec = { name: "help", short: "h" };

export interface CommandInfo {
  options: readonly OptionSpec[];
  /** How many arguments it takes (beside options), and what to say when they are missing. */
  args: { min: number; max: number; want?: string };
  usage: string;
}

const configLine = `  -c, --config FILE   the config file (default ${DEFAULT_CONFIG})
  -h, --help          this help`;

export const COMMANDS: Record<string, CommandInfo> = {
  serve: {
    options: [CONFIG, HELP],
    args: { min: 0, max: 0 },
    usage: `usage: mamkit serve [-c FILE]

Runs the server until SIGINT or SIGTERM, which close every stream with
system-shutdown and the database cleanly (exit 0). On SQLite it holds a lock
file next to the database (DATABASE.serve-lock) while it runs, so that
deluser can warn that the database is in use.

${configLine}`,
  },
  adduser: {
    options: [CONFIG, HELP],
    args: { min: 1, max: 1, want: "one JID, e.g. mamkit adduser alice@localhost" },
    usage: `usage: mamkit adduser [-c FILE] JID

Creates the account JID (user@host). The password is asked twice without echo
on a terminal, or read from the first line of standard input.

${configLine}`,
  },
  passwd: {
    options: [CONFIG, HELP],
    args: { min: 1, max: 1, want: "one JID, e.g. mamkit passwd alice@localhost" },
    usage: `usage: mamkit passwd [-c FILE] JID

Sets a new password for the account JID, asked or read as for adduser.

${configLine}`,
  },
  deluser: {
    options: [CONFIG, { name: "yes", short: "y" }, HELP],
    args: { min: 1, max: 1, want: "one JID, e.g. mamkit deluser alice@localhost" },
    usage: `usage: mamkit deluser [-c FILE] [-y] JID

Deletes the account JID and everything stored for it: archive, archive prefs,
roster, smart retention tracking, ... It asks first on a terminal; without a
terminal it needs --yes. It warns when a running \`mamkit serve\` uses the
database.

${configLine}
  -y, --yes           delete without asking`,
  },
  retention: {
    options: [CONFIG, { name: "dry-run", short: "n" }, { name: "user", short: "u", value: true }, { name: "json" }, HELP],
    args: { min: 0, max: 1 },
    usage: `usage: mamkit retention --dry-run [-c FILE] [-u JID] [--json]
       mamkit retention run [-c FILE] [-u JID] [--json]

--dry-run shows, per user, what smart retention would delete and why: each
client's acknowledged positions, first and last seen; the user's archive in
runs of messages that would go or stay, with the rule that decides, their
positions, ids and dates; and the user's recent sessions that were not
tracked, and why.
run runs a cleanup now (a progress bar on a terminal). Beside a running
server it cannot see connected clients, so it forgets no client for
smart_retention_client_expiry (the server's own cleanup does that).

${configLine}
  -n, --dry-run       delete nothing: explain
  -u, --user JID      only this user (an unknown account or host is an error)
      --json          print one JSON document instead of text`,
  },
  check: {
    options: [CONFIG, HELP],
    args: { min: 0, max: 0 },
    usage: `usage: mamkit check [-c FILE]

Reads the config, checks every key and module option and loads every module
on throw-away memory storage; prints FILE: OK and the hosts, or the error.
Unknown keys are warnings.

${configLine}`,
  },
  migrate: {
    options: [{ name: "from", value: true }, { name: "to", value: true }, { name: "chunk", value: true }, { name: "quiet", short: "q" }, HELP],
    args: { min: 0, max: 0 },
    usage: `usage: mamkit migrate --from SRC --to DST [--chunk N] [-q]

Copies a database's Prosody tables to another one: every row of prosody
(accounts, rosters, prefs, smart retention tracking, ...) and of
prosodyarchive with its sort_id, so that every archive position stays what
it was; the destination's sequence is set past the source's highest position.
SRC and DST are sqlite:FILE or postgres:URL (postgres://user:password@host:port/db),
either way round. The source is only read. The destination gets Prosody's
tables if missing and must hold no data. Stop the servers using the
destination first (and those writing to the source).

Resumable: the archive goes in chunks, one transaction each, and a state row
in the destination (host "", store mamkit_migrate) says how far it got; after
an interruption (Ctrl-C, a crash, a lost connection) the same command
continues there. At the end both sides are counted and checksummed, row by
row; the state row is deleted once they agree.

      --from SRC      the database to copy (never written)
      --to DST        the database to fill (empty, or an unfinished migration from SRC)
      --chunk N       archive rows per transaction (default 2000)
  -q, --quiet         no progress on standard error
  -h, --help          this help`,
  },
  help: {
    options: [HELP],
    args: { min: 0, max: 1 },
    usage: `usage: mamkit help [COMMAND]

Prints the usage of mamkit, or of COMMAND.`,
  },
};

export const GLOBAL_OPTIONS: readonly OptionSpec[] = [HELP, { name: "version", short: "V" }];

export const USAGE = `usage: mamkit <command> [options]

commands:
  serve                  run the server
  adduser JID            create an account (the password is asked, or read from standard input)
  passwd JID             change an account's password (the same way)
  deluser [-y] JID       delete an account with its archive and all its data
  retention --dry-run [-u JID] [--json]
                         show per user what smart retention would delete, and why
  retention run [-u JID] run a smart retention cleanup now
  check                  check the config file: keys, types, module options, module loading
  migrate --from SRC --to DST
                         copy every row and archive position to another database (sqlite:FILE, postgres:URL)
  help [COMMAND]         this help, or a command's

options:
  -c, --config FILE      the config file (default ${DEFAULT_CONFIG}), for every command but migrate
  -h, --help             help (after a command: that command's)
  -V, --version          print the version

\`mamkit <command> --help\` tells more. Exit codes: 0 done, 1 failed, 2 bad usage.`;

/** The package's version, read from package.json next to src/ or dist/ (both two levels up). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
  return pkg.version ?? "unknown";
}
