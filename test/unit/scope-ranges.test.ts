// Proves that a key's scope becomes the id ranges totalCount counts: prefixes and exact ids, narrowed to an idPrefix without overlaps, "all" for admins and `*`, and null for patterns that are no prefix.
import { expect, test } from "vitest";
import { scopeRanges, type Principal } from "../../src/security/auth.js";
import { rangesWithin } from "../../src/store/contexts.js";

const viewer = (...scope: string[]): Principal => ({ name: "v", role: "viewer", scope });

test("scopeRanges: all, prefixes and exact ids, or null", () => {
  expect(scopeRanges({ name: "a", role: "admin", scope: [] })).toBe("all");
  expect(scopeRanges(viewer("team-*", "*"))).toBe("all");
  expect(scopeRanges(viewer("team-*", "solo"))).toEqual([
    { prefix: "team-", exact: false },
    { prefix: "solo", exact: true },
  ]);
  expect(scopeRanges(viewer("team-*-prod"))).toBeNull();
});

test("rangesWithin narrows to the prefix and drops covered ranges", () => {
  const r = (prefix: string, exact = false) => ({ prefix, exact });
  expect(rangesWithin([r("team-"), r("team-a"), r("team-b1", true), r("other")], "")).toEqual([r("team-"), r("other")]);
  expect(rangesWithin([r("team-"), r("x", true)], "team-a")).toEqual([r("team-a")]);
  expect(rangesWithin([r("team-a"), r("team-b", true), r("zed")], "team-")).toEqual([r("team-a"), r("team-b", true)]);
  expect(rangesWithin([r("a", true), r("a", true), r("a")], "")).toEqual([r("a")]);
  expect(rangesWithin([r("")], "p")).toEqual([r("p")]);
});
