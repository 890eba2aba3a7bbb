// --from and --to: `sqlite:FILE` or `postgres:URL` (a bare postgres:// URL too),
// what identifies each, and whether the two name the same database.
import { existsSync, realpathSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { usageError } from "../args.js";

export type Endpoint =
  | { kind: "sqlite"; option: "--from" | "--to"; spec: string; file: string; identity: string }
  | { kind: "postgres"; option: "--from" | "--to"; spec: string; url: string; identity: string };

/** Parses a --from or --to value; a malformed one is a usage error. */
export function parseEndpoint(option: "--from" | "--to", spec: string): Endpoint {
  const bad = (why: string) => usageError(`${option} ${JSON.stringify(redact(spec))}: ${why}`);
  if (spec.startsWith("sqlite:")) {
    const file = spec.slice("sqlite:".length);
    if (file === "") throw bad("give the database file after sqlite:");
    if (file === ":memory:" || file.startsWith("file:")) throw bad("give the path of a database file");
    const path = resolve(file);
    return { kind: "sqlite", option, spec, file: path, identity: `sqlite:${canonicalPath(path)}` };
  }
  let url: string;
  if (spec.startsWith("postgres://") || spec.startsWith("postgresql://")) url = spec;
  else if (spec.startsWith("postgres:") || spec.startsWith("postgresql:")) url = spec.slice(spec.indexOf(":") + 1);
  else throw bad("expected sqlite:FILE or postgres:URL (postgres://user:password@host:port/database)");
  if (!/^postgres(ql)?:\/\//.test(url)) throw bad("the URL after postgres: must start with postgres://");
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad("not a valid URL");
  }
  const database = decodeURIComponent(u.pathname.slice(1));
  if (database === "") throw bad("the URL names no database (postgres://user@host:port/DATABASE)");
  const host = u.searchParams.get("host") ?? (u.hostname || "localhost");
  return { kind: "postgres", option, spec, url, identity: `postgres://${host}:${u.port || "5432"}/${database}` };
}

/** The spec without the password a URL in it may hold, for messages. */
export const redact = (spec: string) => spec.replace(/(\/\/[^/:@]*:)[^/@]*@/, "$1***@");

/** The path with every link resolved, for a file that may not exist yet. */
function canonicalPath(path: string): string {
  if (existsSync(path)) return realpathSync(path);
  const dir = dirname(path);
  return dir === path ? path : join(canonicalPath(dir), basename(path));
}

/**
 * Whether two SQLite endpoints are the same file: by path, or by device and
 * inode (a hard link). Two PostgreSQL ones are compared once connected
 * (postgres.ts: the same database may go by several host names).
 */
export function sameSqliteFile(a: string, b: string): boolean {
  if (canonicalPath(a) === canonicalPath(b)) return true;
  if (!existsSync(a) || !existsSync(b)) return false;
  const x = statSync(a);
  const y = statSync(b);
  return x.dev === y.dev && x.ino === y.ino;
}
