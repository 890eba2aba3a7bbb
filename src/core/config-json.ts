// Where a config file stops being JSON, in our words and with line and column
// (V8's messages give neither line nor, at times, a position).

/** Where JSON.parse stopped, if its message says (V8: "at position N"); else the end. */
export function v8Position(err: Error, text: string): number {
  const m = /at position (\d+)/.exec(err.message);
  return m ? Number(m[1]) : text.length;
}

export function lineAndColumn(text: string, at: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < at && i < text.length; i++) {
    if (text[i] === "\n") {
      line++;
      start = i + 1;
    }
  }
  return { line, column: at - start + 1 };
}

class JsonSyntax {
  constructor(
    readonly at: number,
    readonly what: string,
  ) {}
}

/**
 * The first JSON syntax error in `text` and where it is, in our words (V8's
 * messages have no line, and some no position). Undefined if there is none.
 */
export function jsonSyntaxError(text: string): { at: number; what: string } | undefined {
  let i = 0;
  const fail: (what: string, at?: number) => never = (what, at = i) => {
    throw new JsonSyntax(at, what);
  };
  const space = () => {
    for (;;) {
      const c = text[i];
      if (c === " " || c === "\t" || c === "\n" || c === "\r") i++;
      else if (c === "/" && (text[i + 1] === "/" || text[i + 1] === "*")) fail("comments are not allowed in JSON");
      else return;
    }
  };
  const string = () => {
    const start = i;
    i++; // the opening quote
    for (;;) {
      const c = text[i];
      if (c === undefined) fail("the file ends inside a string (a closing '\"' is missing)", start);
      if (c === '"') {
        i++;
        return;
      }
      if (c === "\\") {
        const e = text[i + 1];
        if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail("an invalid escape in a string (\\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)");
        continue;
      }
      if (c === "\n") fail("a line break inside a string (a closing '\"' is missing, or write \\n)");
      if (c < " ") fail("a control character inside a string (write it as \\uXXXX)");
      i++;
    }
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === undefined) fail("the file ends where a value should be");
    if (c === "{" || c === "[") {
      container(c === "{" ? "}" : "]");
      return;
    }
    if (c === '"') {
      string();
      return;
    }
    if (c === "-" || (c >= "0" && c <= "9")) {
      const m = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
      m.lastIndex = i;
      const found = m.exec(text);
      if (!found || /[0-9.eE+\-A-Za-z_]/.test(text[i + found[0].length] ?? "")) fail("an invalid number");
      i += found[0].length;
      return;
    }
    for (const word of ["true", "false", "null"]) {
      if (text.startsWith(word, i) && !/[A-Za-z0-9_]/.test(text[i + word.length] ?? "")) {
        i += word.length;
        return;
      }
    }
    if (c === "'") fail("strings take double quotes, not single quotes");
    fail("expected a value (a string in double quotes, a number, an object, a list, true, false or null)");
  };
  /** An object or a list, from its opening bracket. */
  const container = (close: "}" | "]") => {
    const open = i;
    const inside = close === "}" ? "an object" : "a list";
    const unclosed = () => fail(`${inside} opened here has no closing '${close}' (the file ends first)`, open);
    i++;
    space();
    if (text[i] === close) {
      i++;
      return;
    }
    for (;;) {
      if (close === "}") {
        space();
        if (text[i] === undefined) unclosed();
        if (text[i] === "'") fail("keys take double quotes, not single quotes");
        if (text[i] !== '"') fail("expected a key in double quotes");
        string();
        space();
        if (text[i] === undefined) unclosed();
        if (text[i] !== ":") fail("expected ':' after the key");
        i++;
      }
      value();
      const end = i;
      space();
      const c = text[i];
      if (c === close) {
        i++;
        return;
      }
      if (c === undefined) unclosed();
      if (c !== ",") fail(`expected ',' or '${close}' after this value`, end);
      const comma = i;
      i++;
      space();
      if (text[i] === close) fail(`a ',' after the last item of ${inside} (JSON allows none)`, comma);
    }
  };
  try {
    value();
    space();
    if (i < text.length) fail("more text after the end of the JSON value");
    return undefined;
  } catch (e) {
    if (e instanceof JsonSyntax) return { at: e.at, what: e.what };
    return undefined; // nested too deep for this scanner: the caller falls back on V8's message
  }
}
