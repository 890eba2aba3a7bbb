// Hygiene of the tests themselves: no test prints instead of checking, and
// every it()/test() block asserts something (expect, assert, or a helper whose
// name starts with expect, such as expectChecksPass). Read with the TypeScript
// parser, so strings and regular expressions do not confuse it.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const TEST = fileURLToPath(new URL("./", import.meta.url));

function testSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testSources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** The name a call is made through: `it`, `it.each(...)`, `test.skipIf(...)` all give `it` / `test`. */
function calleeRoot(e: ts.Expression): string | undefined {
  if (ts.isIdentifier(e)) return e.text;
  if (ts.isPropertyAccessExpression(e) || ts.isCallExpression(e)) return calleeRoot(e.expression);
  return undefined;
}

interface Found {
  printing: string[];
  unasserted: string[];
}

function scan(): Found {
  const found: Found = { printing: [], unasserted: [] };
  for (const file of testSources(TEST)) {
    const text = readFileSync(file, "utf8");
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const where = (n: ts.Node) => `${relative(TEST, file)}:${source.getLineAndCharacterOfPosition(n.getStart(source)).line + 1}`;
    const visit = (n: ts.Node): void => {
      if (ts.isCallExpression(n)) {
        const callee = n.expression;
        if (
          ts.isPropertyAccessExpression(callee) &&
          ts.isIdentifier(callee.expression) &&
          callee.expression.text === "console"
        ) {
          found.printing.push(`${where(n)}: console.${callee.name.text}`);
        }
        const root = calleeRoot(callee);
        const body = n.arguments[1];
        if ((root === "it" || root === "test") && body && (ts.isArrowFunction(body) || ts.isFunctionExpression(body))) {
          if (!/\bexpect|\bassert/.test(body.getText(source))) found.unasserted.push(`${where(n)}: ${n.arguments[0]!.getText(source)}`);
        }
      }
      ts.forEachChild(n, visit);
    };
    visit(source);
  }
  return found;
}

describe("test hygiene", () => {
  const found = scan();

  it("reads the test files", () => {
    expect(testSources(TEST).length).toBeGreaterThan(50);
  });

  it("no test file prints with console (an assertion's message carries what a failure needs)", () => {
    expect(found.printing).toEqual([]);
  });

  it("every it()/test() block asserts something", () => {
    expect(found.unasserted).toEqual([]);
  });
});
