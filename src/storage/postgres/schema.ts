// Prosody 0.12's tables on PostgreSQL, as its mod_storage_sql creates them
// (util/sql.lua: TEXT for MEDIUMTEXT, BIGSERIAL for the auto-increment key,
// IF NOT EXISTS on tables and indexes), so that a database Prosody made opens
// here and the other way round. test/fixtures/prosody-postgres-schema.sql is
// what Prosody itself produced; a test holds the two equal.
import type { Queryable } from "./connection.js";

export const PROSODY_PG_SCHEMA: readonly string[] = [
  'CREATE TABLE IF NOT EXISTS "prosody" ("host" TEXT NOT NULL, "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL, "type" TEXT NOT NULL, "value" TEXT NOT NULL)',
  'CREATE INDEX IF NOT EXISTS "prosody_index" ON "prosody" ("host", "user", "store", "key")',
  'CREATE TABLE IF NOT EXISTS "prosodyarchive" ("sort_id" BIGSERIAL PRIMARY KEY, "host" TEXT NOT NULL, "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL, "when" INTEGER NOT NULL, "with" TEXT NOT NULL, "type" TEXT NOT NULL, "value" TEXT NOT NULL)',
  'CREATE UNIQUE INDEX IF NOT EXISTS "prosodyarchive_index" ON "prosodyarchive" ("host", "user", "store", "key")',
  'CREATE INDEX IF NOT EXISTS "prosodyarchive_with_when" ON "prosodyarchive" ("host", "user", "store", "with", "when")',
  'CREATE INDEX IF NOT EXISTS "prosodyarchive_when" ON "prosodyarchive" ("host", "user", "store", "when")',
  'CREATE INDEX IF NOT EXISTS "prosodyarchive_sort" ON "prosodyarchive" ("host", "user", "store", "sort_id")',
];

/** Advisory-lock namespaces (the first key of pg_advisory_lock(int, int)): "mamk" and neighbours. */
export const LOCK_USER = 0x6d616d6b;
export const LOCK_SCHEMA = 0x6d616d6c;
export const LOCK_LEADER = 0x6d616d6d;

/** The names a complete schema has (tables and indexes). */
const NAMES = PROSODY_PG_SCHEMA.map((sql) => /"([a-z_]+)"/.exec(sql)![1]!);

/**
 * Creates what is missing. Several nodes may start at once on a new
 * database: IF NOT EXISTS alone can still collide in the catalogue, so the
 * creation runs under a transaction-level advisory lock.
 */
export async function ensureSchema(c: Queryable, create: boolean): Promise<void> {
  const present = async () =>
    new Set(
      (
        await c.query("SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relname = ANY($1)", [NAMES])
      ).rows.map((r) => r.relname as string),
    );
  const have = await present();
  if (have.size === NAMES.length) return;
  if (!create) throw new Error(`the database has no complete Prosody schema (missing: ${NAMES.filter((n) => !have.has(n)).join(", ")})`);
  await c.query("BEGIN");
  try {
    await c.query("SELECT pg_advisory_xact_lock($1, 0)", [LOCK_SCHEMA]);
    for (const sql of PROSODY_PG_SCHEMA) await c.query(sql);
    await c.query("COMMIT");
  } catch (err) {
    await c.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

/** A 32-bit FNV-1a hash: the second key of a user's advisory lock. */
export function lockKey(host: string, user: string): number {
  let h = 0x811c9dc5;
  const s = `${host}\u0000${user}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}
