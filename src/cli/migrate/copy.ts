// One run of a migration, resumable at every point:
//
// 1. "prosody" and the state row are committed together in one transaction
//    (before it commits, the destination is still empty: a rerun starts over);
// 2. the archive goes in sort_id order, each chunk one transaction that also
//    moves the state row to the chunk's last sort_id (a chunk is there with
//    its state, or neither is: a rerun continues after the last one there);
// 3. the archive's sequence is set past the source's highest position (a
//    rerun sets it again), both sides are verified, and the state row is
//    deleted — the migration's last step; after it, a rerun refuses.
import { CliError } from "../args.js";
import { decodeState, type Destination, encodeState, type MigrationState, type Source, type Summary, Transient } from "./model.js";
import type { Progress } from "./progress.js";
import { differences } from "./verify.js";

export interface RunOptions {
  /** What identifies the source in the state row. */
  identity: string;
  /** Archive rows per transaction (and "prosody" rows per insert). */
  chunk: number;
  progress: Progress;
  /** Asked between chunks: stop there (Ctrl-C). */
  stopRequested: () => boolean;
}

export interface RunResult {
  /** The state found in the destination, when this run continued an interrupted one. */
  resumed?: MigrationState;
  state: MigrationState;
  /** Archive rows copied by this run, and chunks. */
  copiedNow: number;
  chunks: number;
  /** Milliseconds: the whole run, and its archive copy. */
  ms: number;
  archiveMs: number;
  source: Summary;
  destination: Summary;
}

/** Ctrl-C: the run stopped between two chunks. */
export class Interrupted extends CliError {}

const hint = (s: MigrationState, total: number, transient = true) =>
  `${s.archiveRows} of ${total} archive rows are copied; ${transient ? "run the same command again to continue" : "once that is fixed, the same command continues"} after them`;

export async function runMigration(src: Source, dst: Destination, o: RunOptions): Promise<RunResult> {
  const began = Date.now();
  if ((await src.state()) !== undefined) {
    throw new CliError("--from: the source is itself the destination of an unfinished migration (it holds mamkit's migration state row): finish that one first");
  }
  const found = await dst.inspect();
  let state: MigrationState;
  let resumed: MigrationState | undefined;
  if (found.state === undefined) {
    if (found.prosodyRows > 0 || found.archiveRows > 0) {
      throw new CliError(
        `--to: the destination already holds data (${found.prosodyRows} rows in prosody, ${found.archiveRows} in prosodyarchive): ` +
          "mamkit migrate copies only into an empty database (or continues its own unfinished migration there)",
      );
    }
    const fresh: MigrationState = { version: 1, source: o.identity, started: new Date().toISOString(), prosodyRows: 0, archiveRows: 0, after: null };
    o.progress.begin("prosody", 0, await src.prosodyRows());
    const n = await dst.start(
      src.prosody(o.chunk),
      (rows) => encodeState({ ...fresh, prosodyRows: rows }),
      (rows) => o.progress.update(rows),
    );
    o.progress.end();
    state = { ...fresh, prosodyRows: n };
  } else {
    try {
      state = decodeState(found.state);
    } catch (err) {
      throw new CliError(`--to: the destination holds a migration state row mamkit cannot read (${(err as Error).message}); empty the destination and migrate again`);
    }
    if (state.source !== o.identity) {
      throw new CliError(`--to: the destination holds an unfinished migration from ${state.source}, not from ${o.identity}: continue it with that --from, or empty the destination`);
    }
    if (found.prosodyRows !== state.prosodyRows || found.archiveRows !== state.archiveRows || found.maxSortId !== state.after) {
      throw new CliError(
        `--to: the destination changed since the interrupted migration (its state says ${state.prosodyRows} prosody rows, ${state.archiveRows} archive rows up to sort_id ${state.after ?? "none"}; ` +
          `it holds ${found.prosodyRows}, ${found.archiveRows} up to ${found.maxSortId ?? "none"}): empty it and migrate again`,
      );
    }
    resumed = state;
  }
  // from here on the destination holds the state row: every failure can be resumed
  let current = found.state ?? encodeState(state);
  const total = await src.archiveRows();
  const archiveBegan = Date.now();
  let copiedNow = 0;
  let chunks = 0;
  o.progress.begin("prosodyarchive", state.archiveRows, total);
  try {
    // the next chunk is read while the current one is written
    let pending = src.archiveAfter(state.after, o.chunk);
    for (;;) {
      const rows = await pending;
      if (rows.length === 0) break;
      if (o.stopRequested()) throw new Interrupted(`interrupted: ${hint(state, total)}`);
      const last = rows[rows.length - 1]![0];
      pending = src.archiveAfter(last, o.chunk);
      pending.catch(() => undefined); // (awaited at the next turn, unless this chunk fails)
      const next: MigrationState = { ...state, archiveRows: state.archiveRows + rows.length, after: last };
      const text = encodeState(next);
      await dst.chunk(rows, current, text);
      state = next;
      current = text;
      copiedNow += rows.length;
      chunks++;
      o.progress.update(state.archiveRows);
    }
  } catch (err) {
    o.progress.end();
    if (err instanceof Interrupted) throw err;
    throw new CliError(`${(err as Error).message} (${hint(state, total, err instanceof Transient)})`);
  }
  o.progress.end();
  const archiveMs = Date.now() - archiveBegan;
  if (o.stopRequested()) throw new Interrupted(`interrupted before the verification: ${hint(state, total)}`);

  o.progress.note("verifying: counting and checksumming every row on both sides");
  await dst.complete();
  const source = await src.summary();
  await dst.setSequence(Math.max(source.sequence, source.archive.maxSortId ?? 0));
  const destination = await dst.summary();
  const wrong = differences(source, destination);
  if (wrong.length > 0) {
    throw new CliError(
      `verification failed: ${wrong.join("; ")}. The destination keeps its migration state. ` +
        "If a server wrote to the source or the destination meanwhile, stop it, empty the destination and migrate again",
    );
  }
  await dst.finish(current);
  return { ...(resumed && { resumed }), state, copiedNow, chunks, ms: Date.now() - began, archiveMs, source, destination };
}
