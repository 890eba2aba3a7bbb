// "Is a server using this database?" for SQLite. `mamkit serve` holds a lock
// on a small SQLite file next to the database, DATABASE.serve-lock: a write
// lock (BEGIN IMMEDIATE, SQLite's RESERVED lock, an fcntl lock of the OS) for
// as long as it runs. The OS drops such a lock when the process ends, however
// it ends (SIGKILL and crashes too), so a lock file left behind never says
// "in use". The file also names the pid that took it. SQLite's own locks on
// the database are no use here: a server holds them only while it writes.
// Only `mamkit serve` takes this lock: Prosody, or an application embedding
// the library, on the same file go unseen.
import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import type { StorageConfig } from "../storage/types.js";

export function serveLockPath(database: string): string {
  return `${database}.serve-lock`;
}

function lockFileOf(storage: StorageConfig): string | undefined {
  if (storage.driver !== "sqlite" || storage.database === ":memory:" || storage.database === "") return undefined;
  return serveLockPath(storage.database);
}

export interface ServeLock {
  readonly path: string;
  release(): void;
}

const isBusy = (err: unknown) => (err as { code?: string }).code?.startsWith("SQLITE_BUSY") === true || (err as { code?: string }).code === "SQLITE_LOCKED";

/**
 * Takes the lock of a server on `storage` (SQLite only), held until release()
 * or the end of the process. Undefined when there is nothing to lock, or when
 * another server holds it already (two servers may share a file: the first
 * one's lock says "in use" for both).
 */
export function holdServeLock(storage: StorageConfig): ServeLock | undefined {
  const path = lockFileOf(storage);
  if (path === undefined) return undefined;
  const db = new Database(path, { timeout: 0 });
  try {
    db.exec("CREATE TABLE IF NOT EXISTS server (pid INTEGER NOT NULL, started TEXT NOT NULL)");
    db.exec("BEGIN IMMEDIATE");
    // (written and committed, so that a reader sees it; then the lock is taken again at once)
    db.prepare("DELETE FROM server").run();
    db.prepare("INSERT INTO server (pid, started) VALUES (?, ?)").run(process.pid, new Date().toISOString());
    db.exec("COMMIT");
    db.exec("BEGIN IMMEDIATE");
  } catch (err) {
    db.close();
    if (isBusy(err)) return undefined;
    throw err;
  }
  return {
    path,
    release: () => {
      if (!db.open) return;
      db.exec("ROLLBACK");
      db.close();
    },
  };
}

export interface InUse {
  path: string;
  pid?: number;
  started?: string;
}

/** Whether a running `mamkit serve` holds the lock of `storage` (and which pid), without waiting. */
export function serverUsing(storage: StorageConfig): InUse | undefined {
  const path = lockFileOf(storage);
  if (path === undefined || !existsSync(path)) return undefined;
  const db = new Database(path, { timeout: 0, fileMustExist: true });
  try {
    try {
      db.exec("BEGIN IMMEDIATE");
      db.exec("ROLLBACK");
      return undefined; // nobody holds it
    } catch (err) {
      if (!isBusy(err)) throw err;
    }
    try {
      const row = db.prepare("SELECT pid, started FROM server").get() as { pid: number; started: string } | undefined;
      return row ? { path, pid: row.pid, started: row.started } : { path };
    } catch {
      return { path };
    }
  } finally {
    db.close();
  }
}
