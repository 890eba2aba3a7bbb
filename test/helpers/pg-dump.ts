// pg_dump --schema-only of a database in a test cluster (test/helpers/pg.ts), normalised the way
// test/fixtures/prosody-postgres-schema.sql was made: without pg_dump's session SET lines, its
// \restrict / \unrestrict markers (random per run), its "PostgreSQL database dump" and
// "Dumped from/by" comments, and without the fixture's own header comment.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findPostgres, type PgCluster } from "./pg.js";

export const PROSODY_SCHEMA_FIXTURE = fileURLToPath(new URL("../fixtures/prosody-postgres-schema.sql", import.meta.url));

/** pg_dump --schema-only --no-owner --no-privileges of a database (by name), as the superuser over the socket. */
export function schemaDump(cluster: PgCluster, database: string): Promise<string> {
  const bin = findPostgres()?.bin;
  if (!bin) return Promise.reject(new Error("no PostgreSQL programs here"));
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PG"))), LC_ALL: "C" };
  const args = ["--schema-only", "--no-owner", "--no-privileges", "-w", "-h", cluster.socketDir, "-p", String(cluster.port), "-U", "postgres", "-d", database];
  return new Promise((resolve, reject) =>
    execFile(join(bin, "pg_dump"), args, { env, encoding: "utf8", timeout: 30_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`pg_dump failed: ${stderr || err.message}`)) : resolve(stdout),
    ),
  );
}

/** What is left of a pg_dump (or of the fixture) once its run-specific lines are gone: the DDL and its "-- Name:" comments. */
export function normaliseDump(text: string): string {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  // the fixture's header: the comment lines before its first blank line (a pg_dump starts with "--" then
  // "-- PostgreSQL database dump", dropped below)
  if (lines[0]?.startsWith("-- ") && !/^-- PostgreSQL database dump/.test(lines[0])) {
    while (lines.length > 0 && lines[0] !== "") lines.shift();
  }
  const kept: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^\\(un)?restrict /.test(line) || /^SET /.test(line) || /^SELECT pg_catalog\.set_config\(/.test(line)) continue;
    if (/^-- Dumped (from database|by pg_dump) version /.test(line)) continue;
    // "--" / "-- PostgreSQL database dump[ complete]" / "--"
    if (line === "--" && /^-- PostgreSQL database dump( complete)?$/.test(lines[i + 1] ?? "") && lines[i + 2] === "--") {
      i += 2;
      continue;
    }
    kept.push(line);
  }
  // runs of blank lines (where the SET lines were, and between pg_dump's blocks) count as one
  return kept
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

/** The fixture, normalised. */
export function prosodySchemaFixture(): string {
  return normaliseDump(readFileSync(PROSODY_SCHEMA_FIXTURE, "utf8"));
}
