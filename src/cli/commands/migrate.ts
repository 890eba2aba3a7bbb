// `mamkit migrate --from SRC --to DST [--chunk N] [--quiet]`: copies Prosody's
// two tables, every row and every archive position, from one database to
// another (SQLite or PostgreSQL, either way), resumably, and verifies the copy.
import { serverUsing } from "../lock.js";
import { CliError, type CommandContext, EXIT_OK, usageError } from "../args.js";
import { runMigration } from "../migrate/copy.js";
import { type Endpoint, parseEndpoint, sameSqliteFile } from "../migrate/endpoints.js";
import type { Destination, Source } from "../migrate/model.js";
import { PgDestination, PgSource } from "../migrate/postgres.js";
import { Progress } from "../migrate/progress.js";
import { SqliteDestination, SqliteSource } from "../migrate/sqlite.js";
import { verifiedText } from "../migrate/verify.js";

export const DEFAULT_CHUNK = 2000;
const MAX_CHUNK = 100_000;

function chunkOption(ctx: CommandContext): number {
  const v = ctx.args.options.get("chunk");
  if (v === undefined) return DEFAULT_CHUNK;
  const n = typeof v === "string" && /^[0-9]+$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= 1 && n <= MAX_CHUNK)) throw usageError(`--chunk takes a number of rows from 1 to ${MAX_CHUNK}, not ${JSON.stringify(v)}`);
  return n;
}

function endpoints(ctx: CommandContext): [Endpoint, Endpoint] {
  const from = ctx.args.options.get("from");
  const to = ctx.args.options.get("to");
  if (typeof from !== "string" || typeof to !== "string") {
    throw usageError(`give ${typeof from !== "string" ? "--from SRC" : ""}${typeof from !== "string" && typeof to !== "string" ? " and " : ""}${typeof to !== "string" ? "--to DST" : ""}`);
  }
  const src = parseEndpoint("--from", from);
  const dst = parseEndpoint("--to", to);
  const same = src.identity === dst.identity || (src.kind === "sqlite" && dst.kind === "sqlite" && sameSqliteFile(src.file, dst.file));
  if (same) throw usageError(`--from and --to name the same database (${src.identity})`);
  return [src, dst];
}

async function openSource(e: Endpoint): Promise<Source> {
  if (e.kind === "postgres") return PgSource.open(e.identity, e.url);
  const using = serverUsing({ driver: "sqlite", database: e.file, synchronous: "full" });
  if (using) {
    process.stderr.write(
      `mamkit migrate: warning: ${using.pid !== undefined ? `mamkit serve (pid ${using.pid})` : "a running mamkit serve"} is using the source ${e.file}: ` +
        "what it writes during the migration makes the verification fail; stop it first\n",
    );
  }
  return new SqliteSource(e.identity, e.file);
}

async function openDestination(e: Endpoint, src: Source): Promise<Destination> {
  if (e.kind === "sqlite") return new SqliteDestination(e.identity, e.file);
  const d = await PgDestination.connect(e.identity, e.url);
  try {
    // the same database under another host name: the source sees the lock the destination took
    if (src instanceof PgSource && (await src.holdsMigrationLock(d.pid))) throw usageError(`--from and --to name the same database (${e.identity})`);
    await d.prepare();
    return d;
  } catch (err) {
    await d.close();
    throw err;
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export async function migrate(ctx: CommandContext): Promise<number> {
  const [from, to] = endpoints(ctx);
  const chunk = chunkOption(ctx);
  const progress = new Progress(ctx.args.options.has("quiet") ? "quiet" : process.stderr.isTTY ? "tty" : "lines");
  let stop = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop) process.exit(signal === "SIGINT" ? 130 : 143); // the open transaction is rolled back: nothing half-written stays
    stop = true;
    progress.note(`${signal}: stopping after the current chunk (again to stop at once)`);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let src: Source | undefined;
  let dst: Destination | undefined;
  try {
    src = await openSource(from);
    dst = await openDestination(to, src);
    const r = await runMigration(src, dst, { identity: from.identity, chunk, progress, stopRequested: () => stop });
    const rate = r.archiveMs > 0 ? Math.round((r.copiedNow / r.archiveMs) * 1000) : r.copiedNow;
    const lines = [`migrated ${from.identity} to ${to.identity} in ${seconds(r.ms)}`];
    if (r.resumed) {
      lines.push(`  continued the migration begun ${r.resumed.started}: ${r.resumed.archiveRows} archive rows were copied before, ${r.copiedNow} now`);
    }
    lines.push(
      `  prosody          ${r.state.prosodyRows} rows${r.resumed ? " (copied before)" : ", in one transaction"}`,
      `  prosodyarchive   ${r.state.archiveRows} rows: ${r.copiedNow} in ${r.chunks} chunk(s) of up to ${chunk} by this run, ${seconds(r.archiveMs)}, ${rate} rows/s`,
      verifiedText(r.source),
    );
    process.stdout.write(`${lines.join("\n")}\n`);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError((err as Error).message || String(err));
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await dst?.close().catch(() => undefined);
    await src?.close().catch(() => undefined);
  }
}
