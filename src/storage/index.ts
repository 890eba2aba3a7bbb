// Storage entry point: picks the driver named by the config.
import { MemoryDriver } from "./memory/driver.js";
import { PostgresDriver } from "./postgres/driver.js";
import { SqliteDriver } from "./sqlite/driver.js";
import type { StorageConfig, StorageDriver } from "./types.js";

export function openStorage(config: StorageConfig): StorageDriver {
  const commit = { ...(config.commitDelayMs !== undefined && { commitDelayMs: config.commitDelayMs }), ...(config.commitMaxWrites !== undefined && { commitMaxWrites: config.commitMaxWrites }) };
  switch (config.driver) {
    case "memory":
      return new MemoryDriver({ commit });
    case "sqlite":
      return new SqliteDriver(config.database, { synchronous: config.synchronous, commit, checkpoints: "worker" });
    case "postgres":
      return new PostgresDriver({ url: config.url, pool: config.pool, setting: config.setting, commit });
  }
}

export { MemoryDriver, PostgresDriver, SqliteDriver };
export { DEFAULT_GROUP_COMMIT } from "./group-commit.js";
export * from "./types.js";
