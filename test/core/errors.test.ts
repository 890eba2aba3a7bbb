// The error catalogue: the codes the code knows and the table in docs/library.md are one list.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { HOST_ERROR_CODES } from "../../src/core/errors.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function docsTable(): Record<string, string> {
  const doc = readFileSync(join(ROOT, "docs/library.md"), "utf8");
  const section = doc.slice(doc.indexOf("## Errors"), doc.indexOf("Stores throw `StorageError`"));
  const rows: Record<string, string> = {};
  for (const m of section.matchAll(/^\| `(MAMKIT_ERR_[A-Z_]+)` \| (.+) \|$/gm)) rows[m[1]!] = m[2]!;
  return rows;
}

it("the error table of docs/library.md is HOST_ERROR_CODES, code for code and word for word", () => {
  const table = docsTable();
  expect(Object.keys(table).length).toBeGreaterThan(0);
  expect(table).toEqual({ ...HOST_ERROR_CODES });
});

it("every code thrown in src/ is in the catalogue", () => {
  const files = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
  const used = new Set<string>();
  for (const f of files(join(ROOT, "src"))) for (const m of readFileSync(f, "utf8").matchAll(/"(MAMKIT_ERR_[A-Z_]+)"/g)) used.add(m[1]!);
  expect([...used].filter((c) => !(c in HOST_ERROR_CODES))).toEqual([]);
  expect(used.size).toBeGreaterThanOrEqual(Object.keys(HOST_ERROR_CODES).length);
});
