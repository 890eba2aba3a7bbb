// Storage entry point: picks the driver named by the config.
import { MemoryDriver } from "./memory/driver.js";
import { SqliteDriver } from "./sqlite/driver.js";
import type { StorageConfig, StorageDriver } from "./types.js";

export function openStorage(config: StorageConfig): StorageDriver {
  const commit = { ...(config.commitDelayMs !== undefined && { commitDelayMs: config.commitDelayMs }), ...(config.commitMaxWrites !== undefined && { commitMaxWrites: config.commitMaxWrites }) };
  return config.driver === "memory"
    ? new MemoryDriver({ commit })
    : new SqliteDriver(config.database, { synchronous: config.synchronous, commit, checkpoints: "worker" });
}

export { MemoryDriver, SqliteDriver };
export { DEFAULT_GROUP_COMMIT } from "./group-commit.js";
export * from "./types.js";
