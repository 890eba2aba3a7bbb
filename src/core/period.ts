// Prosody period strings: "90s", "5m", "12h", "1d", "2w", "1y", "never", or a
// number of seconds. Also accepts the spelled-out forms ("3 days", "1 month").
//
// COMPAT: Prosody 0.12's mod_mam read "m" in archive_expires_after as months;
// later Prosody (util.human.io.parse_duration) and this parser read it as
// minutes. Write "1mo" or "1 month" for a month; it is 30 days here.

const UNITS: Record<string, number> = {
  s: 1, sec: 1, second: 1, seconds: 1,
  m: 60, min: 60, mins: 60, minute: 60, minutes: 60,
  h: 3600, hour: 3600, hours: 3600,
  d: 86400, day: 86400, days: 86400,
  w: 604800, week: 604800, weeks: 604800,
  mo: 2592000, month: 2592000, months: 2592000,
  y: 31556952, year: 31556952, years: 31556952, // 365.2425 days, as Prosody
};

const PERIOD_RE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/;

/**
 * Parses a period into seconds; `Infinity` for "never". Returns `undefined`
 * when the value is not a period (callers turn that into a config error).
 */
export function parsePeriod(value: unknown): number | undefined {
  if (typeof value === "number") {
    if (value === Number.POSITIVE_INFINITY) return value; // "never", already parsed
    return Number.isFinite(value) && value >= 0 ? value : undefined;
  }
  if (typeof value !== "string") return undefined;
  const s = value.trim().toLowerCase();
  if (s === "never") return Number.POSITIVE_INFINITY;
  const m = PERIOD_RE.exec(s);
  if (!m) return undefined;
  const unit = m[2] === "" ? 1 : UNITS[m[2]!];
  if (unit === undefined) return undefined;
  return Number(m[1]) * unit;
}

export const PERIOD_EXPECTED =
  'a period: seconds as a number, or a string like "90s", "5m", "12h", "1d", "2w", "1mo", "1y", or "never"';
