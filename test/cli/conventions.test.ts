// The conventions every command follows, as real processes: per-command help,
// --version, extra or foreign arguments refused (exit 2, the command's usage
// on stderr), one message style for errors, no stack traces.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const root = new URL("../..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "mamkit-cli-conv-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = join(dir, "config.json");
writeFileSync(config, JSON.stringify({ storage: { driver: "sqlite", database: join(dir, "db.sqlite") }, hosts: { localhost: {} } }));

function mamkit(...args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli/bin.ts"), ...args], { cwd: root, encoding: "utf8", input: "" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const COMMANDS = ["serve", "adduser", "passwd", "deluser", "retention", "check", "migrate", "help"];
/** Commands that take no config file. */
const NO_CONFIG = new Set(["help", "migrate"]);
/** A valid call of each command but for one extra argument. */
const EXTRA: Record<string, string[]> = {
  serve: ["serve", "extra"],
  adduser: ["adduser", "a@localhost", "extra"],
  passwd: ["passwd", "a@localhost", "extra"],
  deluser: ["deluser", "--yes", "a@localhost", "extra"],
  retention: ["retention", "--dry-run", "extra"],
  check: ["check", "extra"],
  migrate: ["migrate", "--from", "sqlite:/nonexistent/a.sqlite", "--to", "postgres://127.0.0.1:1/db", "extra"],
  help: ["help", "check", "extra"],
};
/** An option of another command. */
const FOREIGN: Record<string, string> = {
  serve: "--yes",
  adduser: "--dry-run",
  passwd: "--user=a@localhost",
  deluser: "--json",
  retention: "--yes",
  check: "--dry-run",
  migrate: "--yes",
  help: "--config=x",
};

/** No stack trace, no bare "error:". */
function wellFormed(err: string, command: string) {
  expect(err).not.toMatch(/^\s+at /m);
  expect(err).not.toMatch(/^error:/m);
  expect(err.split("\n")[0]).toMatch(new RegExp(`^mamkit ${command}: `));
}

describe("help and version", () => {
  it.each(COMMANDS)("%s --help, -h and help %s print that command's usage on stdout", (command) => {
    const long = mamkit(command, "--help");
    expect([long.code, long.err]).toEqual([0, ""]);
    expect(long.out.startsWith(`usage: mamkit ${command}`)).toBe(true);
    expect(mamkit(command, "-h").out).toBe(long.out);
    expect(mamkit("help", command).out).toBe(long.out);
  });

  it("--help, -h and help alone print the global usage on stdout; nothing prints it on stderr with exit 2", () => {
    const h = mamkit("--help");
    expect([h.code, h.err]).toEqual([0, ""]);
    expect(h.out).toMatch(/^usage: mamkit <command>/);
    for (const c of COMMANDS) expect(h.out).toContain(`  ${c}`);
    expect(mamkit("-h").out).toBe(h.out);
    expect(mamkit("help").out).toBe(h.out);
    const none = mamkit();
    expect([none.code, none.out, none.err]).toEqual([2, "", h.out]);
  });

  it("--version and -V print package.json's version", () => {
    const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
    expect(mamkit("--version")).toEqual({ code: 0, out: `${version}\n`, err: "" });
    expect(mamkit("-V").out).toBe(`${version}\n`);
  });

  it("help of an unknown command is a usage error", () => {
    const r = mamkit("help", "frobnicate");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^mamkit help: unknown command "frobnicate"\nusage: mamkit help/);
  });
});

describe("arguments a command does not take", () => {
  it.each(COMMANDS)("%s: an extra argument is refused with exit 2 and the usage", (command) => {
    const r = mamkit(...EXTRA[command]!, ...(NO_CONFIG.has(command) ? [] : ["-c", config]));
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toMatch(new RegExp(`^mamkit ${command}: unexpected argument "extra"\nusage: mamkit ${command}`));
    wellFormed(r.err, command);
  });

  it.each(COMMANDS)("%s: an unknown option, or one of another command, is refused", (command) => {
    const unknown = mamkit(command, "--colour");
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(new RegExp(`^mamkit ${command}: unknown option --colour\nusage: mamkit ${command}`));
    const foreign = mamkit(command, FOREIGN[command]!);
    expect(foreign.code).toBe(2);
    expect(foreign.err).toMatch(new RegExp(`^mamkit ${command}: unknown option ${FOREIGN[command]!.replace(/=.*/, "")}\n`));
  });

  it("unknown commands and global options", () => {
    expect(mamkit("frobnicate")).toMatchObject({ code: 2, err: expect.stringMatching(/^mamkit: unknown command "frobnicate"\nusage: mamkit <command>/) });
    expect(mamkit("-x")).toMatchObject({ code: 2, err: expect.stringMatching(/^mamkit: unknown option -x\n/) });
    // --version is global only
    expect(mamkit("check", "--version").code).toBe(2);
  });

  it("options may come before the command, short ones with their value attached", () => {
    const r = mamkit("-c", config, "check");
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${config}: OK`);
    expect(mamkit("check", `-c${config}`).code).toBe(0);
    expect(mamkit("check", `--config=${config}`).code).toBe(0);
    expect(mamkit("check", "--config")).toMatchObject({ code: 2, err: expect.stringMatching(/^mamkit check: --config needs a value/) });
  });
});

describe("error messages", () => {
  it("a failure is one line, mamkit <command>: <message>, exit 1", () => {
    const missing = mamkit("check", "-c", join(dir, "nope.json"));
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^mamkit check: config: cannot read .*nope\.json/);
    expect(missing.err.trim().split("\n")).toHaveLength(1);
    for (const args of [
      ["adduser", "bob@elsewhere.example"],
      ["passwd", "nobody@localhost"],
      ["deluser", "-y", "nobody@localhost"],
      ["retention", "--dry-run"], // no host loads the module
      ["serve", "-c", join(dir, "nope.json")],
    ]) {
      const r = mamkit(...args, ...(args.includes("-c") ? [] : ["-c", config]));
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.err.trim().split("\n"), args.join(" ")).toHaveLength(1);
      wellFormed(r.err, args[0]!);
    }
    expect(mamkit("passwd", "nobody@localhost", "-c", config).err).toBe("mamkit passwd: no account nobody@localhost\n");
  });

  it("a bad JID is a usage error", () => {
    const r = mamkit("adduser", "bad@@jid", "-c", config);
    expect(r.code).toBe(2);
    wellFormed(r.err, "adduser");
  });
});
