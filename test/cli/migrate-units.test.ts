// The parts of mamkit migrate that need no database: --from/--to specs, the
// state row's reading, the row digest, the verification's wording, progress.
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { CliError, EXIT_USAGE } from "../../src/cli/args.js";
import { parseEndpoint } from "../../src/cli/migrate/endpoints.js";
import { decodeState, encodeState, hex64, type MigrationState, rowDigest, type Summary } from "../../src/cli/migrate/model.js";
import { Progress } from "../../src/cli/migrate/progress.js";
import { differences, verifiedText } from "../../src/cli/migrate/verify.js";

describe("--from and --to", () => {
  it("sqlite:FILE is resolved to an absolute path; postgres URLs are named without their password", () => {
    expect(parseEndpoint("--from", "sqlite:data/x.sqlite")).toMatchObject({ kind: "sqlite", file: resolve("data/x.sqlite") });
    const p = parseEndpoint("--to", "postgres:postgres://bob:s3cret@db.example:6543/chat");
    expect(p).toMatchObject({ kind: "postgres", url: "postgres://bob:s3cret@db.example:6543/chat", identity: "postgres://db.example:6543/chat" });
    expect(parseEndpoint("--to", "postgresql://bob@db.example/chat").identity).toBe("postgres://db.example:5432/chat");
    expect(parseEndpoint("--to", "postgres:///chat?host=/run/postgresql").identity).toBe("postgres:///run/postgresql:5432/chat");
  });

  it("a malformed spec is a usage error that does not print the password", () => {
    const err = (() => {
      try {
        parseEndpoint("--to", "postgres:postgres://bob:s3cret@db.example:6543");
      } catch (e) {
        return e as CliError;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(CliError);
    expect(err!.exitCode).toBe(EXIT_USAGE);
    expect(err!.message).toBe('--to "postgres:postgres://bob:***@db.example:6543": the URL names no database (postgres://user@host:port/DATABASE)');
    expect(() => parseEndpoint("--from", "sqlite::memory:")).toThrow(/give the path of a database file/);
  });
});

describe("the state row", () => {
  const s: MigrationState = { version: 1, source: "sqlite:/a", started: "2026-01-01T00:00:00.000Z", prosodyRows: 3, archiveRows: 500, after: 517 };

  it("reads back what it wrote, and refuses anything else", () => {
    expect(decodeState(encodeState(s))).toEqual(s);
    expect(() => decodeState("{")).toThrow("its value is not JSON");
    expect(() => decodeState(JSON.stringify({ ...s, version: 2 }))).toThrow("it is not a state this version of mamkit wrote");
    expect(() => decodeState(JSON.stringify({ ...s, archiveRows: -1 }))).toThrow("it is not a state");
  });
});

describe("row digests", () => {
  it("depend on every field and its boundaries, not on the order rows are added in", () => {
    expect(rowDigest(["ab", "c"])).not.toBe(rowDigest(["a", "bc"]));
    expect(rowDigest([1, "x"])).toBe(rowDigest(["1", "x"])); // integers in decimal
    expect(rowDigest(["é"])).not.toBe(rowDigest(["e"]));
    const rows = [["a", 1], ["b", 2], ["a", 1]] as const;
    const sum = (rs: readonly (readonly (string | number)[])[]) => BigInt.asUintN(64, rs.reduce((t, r) => t + rowDigest(r), 0n));
    expect(sum(rows)).toBe(sum([...rows].reverse()));
    expect(sum(rows)).not.toBe(sum(rows.slice(1))); // a duplicate counts
    expect(hex64(sum(rows))).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe("verification", () => {
  const side = (): Summary => ({ prosody: { rows: 3, checksum: 7n }, archive: { rows: 10, checksum: 9n, maxSortId: 12 }, sequence: 15 });

  it("the destination's sequence must stand at the source's highest position", () => {
    const dst = side();
    expect(differences(side(), dst)).toEqual([]);
    expect(verifiedText(dst)).toContain("positions up to 15 given out: the next one is 16");
    dst.sequence = 12;
    expect(differences(side(), dst)).toEqual(["the destination's archive sequence stands at 12, not at 15 (the source's highest position)"]);
  });

  it("names counts before checksums, and the highest sort_id", () => {
    const dst = side();
    dst.prosody.checksum = 8n;
    dst.archive = { rows: 9, checksum: 9n, maxSortId: 11 };
    expect(differences(side(), dst)).toEqual([
      "prosody checksum: 0000000000000008 in the destination, 0000000000000007 in the source",
      "prosodyarchive rows: 9 in the destination, 10 in the source",
      "highest sort_id: 11 in the destination, 12 in the source",
    ]);
  });
});

describe("progress", () => {
  function fake(mode: "tty" | "lines" | "quiet") {
    const out: string[] = [];
    let now = 0;
    const p = new Progress(mode, { write: (t: string) => out.push(t) }, mode === "tty" ? 100 : 5000, () => now);
    return { p, out, tick: (ms: number) => (now += ms) };
  }

  it("on a terminal: a bar redrawn in place, rows per second of this run", () => {
    const { p, out, tick } = fake("tty");
    p.begin("prosodyarchive", 1000, 5000);
    tick(1000);
    p.update(3000);
    p.end();
    expect(out[0]).toMatch(/^\r\x1b\[Kprosodyarchive {2}\[#{6} {24}\] 1000\/5000 20% 0 rows\/s$/);
    expect(out[1]).toMatch(/\[#{18} {12}\] 3000\/5000 60% 2000 rows\/s$/);
    expect(out.at(-1)).toBe("\n");
  });

  it("without one: a line every few seconds; --quiet: nothing", () => {
    const { p, out, tick } = fake("lines");
    p.begin("prosodyarchive", 0, 100);
    tick(1000);
    p.update(10);
    tick(5000);
    p.update(60);
    p.end();
    expect(out).toEqual(["prosodyarchive: 60/100 rows (60%), 10 rows/s\n"]);
    const q = fake("quiet");
    q.p.begin("prosody", 0, 1);
    q.tick(10_000);
    q.p.update(1);
    q.p.note("verifying");
    q.p.end();
    expect(q.out).toEqual([]);
  });
});
