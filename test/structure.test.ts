// The layers of ARCHITECTURE.md, read from the imports of src/: xmpp/ is a
// pure library, storage/ knows no core and no feature, core/ knows no feature,
// and no import cycle, type-only imports included, runs through a feature
// folder. (Cycles within core/ are allowed: host and server know each other.)
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [join(dir, e.name)] : [],
  );
}

/** Relative imports and re-exports of every source file, as paths under src/ (`core/host.ts`). */
function edges(): Edge[] {
  const out: Edge[] = [];
  const statement = /^(?:import|export)\s+(type\s+)?(?:[^;]*?\sfrom\s+)?["'](\.[^"']+)["']/gm;
  for (const file of sources(SRC)) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(statement)) {
      const to = normalize(join(dirname(file), m[2]!)).replace(/\.js$/, ".ts");
      out.push({ from: relative(SRC, file), to: relative(SRC, to), typeOnly: m[1] !== undefined });
    }
  }
  return out;
}

const top = (path: string) => (path.includes("/") ? path.slice(0, path.indexOf("/")) : path);
const FEATURES = ["auth", "c2s", "carbons", "mam", "modules", "presence", "retention", "roster", "smacks"];
const CALLERS = ["cli", "testing", "builtins.ts", "server.ts", "index.ts"];

describe("layers (ARCHITECTURE.md: imports point one way)", () => {
  const all = edges();

  it("finds the imports it checks", () => {
    expect(all.length).toBeGreaterThan(100);
  });

  it("xmpp/ imports nothing of ours but itself", () => {
    expect(all.filter((e) => top(e.from) === "xmpp" && top(e.to) !== "xmpp")).toEqual([]);
  });

  it("storage/ imports only itself and xmpp/", () => {
    expect(all.filter((e) => top(e.from) === "storage" && !["storage", "xmpp"].includes(top(e.to)))).toEqual([]);
  });

  it("core/ imports no feature and no caller", () => {
    expect(all.filter((e) => top(e.from) === "core" && [...FEATURES, ...CALLERS].includes(top(e.to)))).toEqual([]);
  });

  it("no built-in module reaches past the module API (hostObject)", () => {
    const users = sources(SRC).filter((f) => FEATURES.includes(top(relative(SRC, f))) && /\.hostObject\b/.test(readFileSync(f, "utf8")));
    expect(users.map((f) => relative(SRC, f))).toEqual([]);
  });

  it("the transport knows no module: src/c2s asks none by name, and connection.ts names none", async () => {
    const { builtinModules } = await import("../src/builtins.js");
    const c2s = sources(join(SRC, "c2s"));
    expect(c2s.filter((f) => readFileSync(f, "utf8").includes("isLoaded(")).map((f) => relative(SRC, f))).toEqual([]);
    // (string literals aside: "presence" there is the stanza, not the module)
    const connection = readFileSync(join(SRC, "c2s/connection.ts"), "utf8").replace(/"[^"\n]*"/g, '""');
    const named = builtinModules.map((m) => m.name).filter((name) => new RegExp(`\\b${name}\\b`).test(connection));
    expect(named).toEqual([]);
    expect(connection.split("\n").length).toBeLessThan(400);
  });

  it("no feature imports a caller (the CLI, the test kit, the list of built-ins)", () => {
    expect(all.filter((e) => FEATURES.includes(top(e.from)) && CALLERS.includes(top(e.to)))).toEqual([]);
  });

  it("no import cycle, type-only imports included, touches a feature folder", () => {
    const next = new Map<string, string[]>();
    for (const e of all) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
    // Tarjan's strongly connected components
    let index = 0;
    const idx = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const cycles: string[][] = [];
    const visit = (v: string) => {
      idx.set(v, index);
      low.set(v, index++);
      stack.push(v);
      onStack.add(v);
      for (const w of next.get(v) ?? []) {
        if (!idx.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
      if (low.get(v) === idx.get(v)) {
        const scc: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          scc.push(w);
        } while (w !== v);
        if (scc.length > 1) cycles.push(scc.sort());
      }
    };
    for (const v of next.keys()) if (!idx.has(v)) visit(v);
    expect(cycles.filter((c) => c.some((f) => FEATURES.includes(top(f))))).toEqual([]);
  });
});
