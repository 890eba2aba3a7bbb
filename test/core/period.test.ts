import { describe, expect, it } from "vitest";
import { parsePeriod } from "../../src/core/period.js";

describe("parsePeriod", () => {
  it.each([
    ["90s", 90],
    ["5m", 300],
    ["12h", 43200],
    ["1d", 86400],
    ["2w", 1209600],
    ["1y", 31556952],
    ["1mo", 2592000],
    ["3 days", 259200],
    ["1 week", 604800],
    ["30", 30],
    [3600, 3600],
    [0, 0],
    ["1.5h", 5400],
    [" 2D ", 172800],
  ] as const)("%s is %d seconds", (input, seconds) => {
    expect(parsePeriod(input)).toBe(seconds);
  });

  it('reads "never" as Infinity', () => {
    expect(parsePeriod("never")).toBe(Number.POSITIVE_INFINITY);
  });

  it.each([["soon"], ["-1d"], ["1 fortnight"], [""], [-5], [Number.NaN], [null], [true], [{}], ["d"]])(
    "rejects %s",
    (input) => {
      expect(parsePeriod(input)).toBeUndefined();
    },
  );
});
