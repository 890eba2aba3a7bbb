// Storage entry point: picks the driver named by the config.
import { MemoryDriver } from "./memory/driver.js";
import { SqliteDriver } from "./sqlite/driver.js";
import type { StorageConfig, StorageDriver } from "./types.js";

export function openStorage(config: StorageConfig): StorageDriver {
  return config.driver === "memory" ? new MemoryDriver() : new SqliteDriver(config.database, { synchronous: config.synchronous });
}

export { MemoryDriver, SqliteDriver };
export * from "./types.js";
