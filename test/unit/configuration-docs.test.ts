// Proves docs/configuration.md's settings table lists every setting of src/config.ts exactly once, with its flag, env variable and default, and nothing else.
import { readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { SETTINGS } from "../../src/config.js";

const DOC = new URL("../../docs/configuration.md", import.meta.url);
const HEADER = "| flag | env | default | meaning |";

interface Row {
  readonly flag: string;
  readonly env: string;
  readonly fallback: string;
}

/** The rows of the doc's settings table, their cells as written (backticks removed). */
function documentedRows(markdown: string): Row[] {
  const lines = markdown.split("\n");
  const start = lines.indexOf(HEADER);
  expect(start, `docs/configuration.md has no table headed ${HEADER}`).toBeGreaterThanOrEqual(0);
  const rows: Row[] = [];
  // Skip the header and its |---| line; the table ends at the first line that is not a row.
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    const [flag = "", env = "", fallback = ""] = line.split("|").slice(1, 4).map((cell) => cell.trim().replace(/^`(.*)`$/, "$1"));
    rows.push({ flag, env, fallback });
  }
  return rows;
}

/** How the doc writes a default: the code's value, or "(none)" for an absent or empty one. */
function documentedDefault(fallback: string | number | null): string {
  return fallback === null || fallback === "" ? "(none)" : String(fallback);
}

test("every setting appears once with the code's flag, env and default, and no other does", () => {
  const rows = documentedRows(readFileSync(DOC, "utf8"));
  const expected = SETTINGS.map((s) => ({ flag: `--${s.flag}`, env: s.env, fallback: documentedDefault(s.fallback) }));
  for (const setting of expected) {
    expect(rows.filter((r) => r.flag === setting.flag), `rows for ${setting.flag}`).toEqual([setting]);
    expect(rows.filter((r) => r.env === setting.env), `rows for ${setting.env}`).toHaveLength(1);
  }
  const known = new Set(expected.map((s) => s.flag));
  expect(rows.filter((r) => !known.has(r.flag)), "rows for settings the code does not have").toEqual([]);
});
