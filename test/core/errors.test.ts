// The error catalogue: the codes the code knows and the README's table are one list.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { HOST_ERROR_CODES } from "../../src/core/errors.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function readmeTable(): Record<string, string> {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("### Errors"), readme.indexOf("Stores throw `StorageError`"));
  const rows: Record<string, string> = {};
  for (const m of section.matchAll(/^\| `(MAMKIT_ERR_[A-Z_]+)` \| (.+) \|$/gm)) rows[m[1]!] = m[2]!;
  return rows;
}

it("the README's error table is HOST_ERROR_CODES, code for code and word for word", () => {
  expect(readmeTable()).toEqual({ ...HOST_ERROR_CODES });
});

it("every code thrown in src/ is in the catalogue", () => {
  const files = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
  const used = new Set<string>();
  for (const f of files(join(ROOT, "src"))) for (const m of readFileSync(f, "utf8").matchAll(/"(MAMKIT_ERR_[A-Z_]+)"/g)) used.add(m[1]!);
  expect([...used].filter((c) => !(c in HOST_ERROR_CODES))).toEqual([]);
  expect(used.size).toBeGreaterThanOrEqual(Object.keys(HOST_ERROR_CODES).length);
});
