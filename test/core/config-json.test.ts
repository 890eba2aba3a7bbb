// A config file that is not JSON: the file, line and column, and what is wrong there in our words.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { jsonSyntaxError, loadConfigFile } from "../../src/core/config.js";
import type { HostError } from "../../src/core/errors.js";

describe("JSON syntax errors", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  function load(text: string): string {
    const d = mkdtempSync(join(tmpdir(), "mamkit-json-"));
    dirs.push(d);
    const p = join(d, "config.json");
    writeFileSync(p, text);
    try {
      loadConfigFile(p);
    } catch (e) {
      expect((e as HostError).code).toBe("MAMKIT_ERR_CONFIG_FILE");
      return (e as Error).message.replace(p, "FILE");
    }
    throw new Error("parsed");
  }

  it("names the file, line and column of a missing comma", () => {
    const text = ['{', '  "storage": "memory",', '  "c2s_ports": [5222]', '  "hosts": { "localhost": {} }', "}"].join("\n");
    // the comma belongs at the end of line 3, after the value
    expect(load(text)).toBe("config: FILE:3:22: not valid JSON: expected ',' or '}' after this value");
  });

  it("says what is wrong in our words", () => {
    const cases: [string, string][] = [
      ['{"a": 1,}', "1:8: not valid JSON: a ',' after the last item of an object (JSON allows none)"],
      ["[1, 2,\n]", "1:6: not valid JSON: a ',' after the last item of a list (JSON allows none)"],
      ["{ hosts: {} }", "1:3: not valid JSON: expected a key in double quotes"],
      ["{'hosts': {}}", "1:2: not valid JSON: keys take double quotes, not single quotes"],
      ['{"a": \'x\'}', "1:7: not valid JSON: strings take double quotes, not single quotes"],
      ['{"a" 1}', "1:6: not valid JSON: expected ':' after the key"],
      ['{\n  "hosts": {\n    "x": {}\n', "2:12: not valid JSON: an object opened here has no closing '}' (the file ends first)"],
      ['{"a": ', "1:7: not valid JSON: the file ends where a value should be"],
      ['{"a": "x', "1:7: not valid JSON: the file ends inside a string (a closing '\"' is missing)"],
      ['{"a": "x\n"}', "1:9: not valid JSON: a line break inside a string (a closing '\"' is missing, or write \\n)"],
      ['{"a": "\\q"}', "1:8: not valid JSON: an invalid escape in a string (\\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)"],
      ['{"a": 01}', "1:7: not valid JSON: an invalid number"],
      ['{"a": tru}', "1:7: not valid JSON: expected a value (a string in double quotes, a number, an object, a list, true, false or null)"],
      ['{\n  // the hosts\n  "hosts": {}\n}', "2:3: not valid JSON: comments are not allowed in JSON"],
      ["{} {}", "1:4: not valid JSON: more text after the end of the JSON value"],
      ["", "1:1: not valid JSON: the file ends where a value should be"],
    ];
    for (const [text, message] of cases) expect([text, load(text)]).toEqual([text, `config: FILE:${message}`]);
  });

  it("finds no error in what JSON.parse accepts", () => {
    fc.assert(
      fc.property(fc.json(), (text) => {
        expect(jsonSyntaxError(text)).toBeUndefined();
      }),
    );
    expect(jsonSyntaxError(' {"a": [1, -2.5e+3, "\\u00e9\\n", true, false, null, {}]} \r\n')).toBeUndefined();
  });

  it("reads a file with a byte order mark", () => {
    const d = mkdtempSync(join(tmpdir(), "mamkit-json-"));
    dirs.push(d);
    writeFileSync(join(d, "c.json"), '\uFEFF{"hosts": {"a.example": {}}}');
    expect(loadConfigFile(join(d, "c.json")).hosts.has("a.example")).toBe(true);
  });
});
