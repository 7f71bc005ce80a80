// Proves the client's diff (what update(fn) writes when fn returns a document): applied with the server's JSON Patch, it turns any document into any other, and names only the members that changed.
import fc from "fast-check";
import { expect, test } from "vitest";
import { diff } from "../../client/src/diff.js";
import { applyPatch } from "../../src/json/patch.js";
import type { JsonValue } from "../../src/json/types.js";

const documents = fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }) as fc.Arbitrary<Record<string, JsonValue>>;

test("applying diff(a, b) to a gives b", () => {
  fc.assert(
    fc.property(documents, documents, (a, b) => {
      expect(applyPatch(a, diff(a, b) as Parameters<typeof applyPatch>[1]).document).toEqual(b);
    }),
    { numRuns: 500 },
  );
});

test("only what changed is named; members set to undefined are removed; keys with / and ~ are escaped", () => {
  expect(diff({ a: { b: 1, c: [1] }, d: "x" }, { a: { b: 2, c: [1] }, d: "x" })).toEqual([{ op: "replace", path: "/a/b", value: 2 }]);
  expect(diff({ a: 1, b: 2 }, { a: 1, b: undefined, "c/~": 3 })).toEqual([
    { op: "remove", path: "/b" },
    { op: "add", path: "/c~1~0", value: 3 },
  ]);
  expect(diff({ a: [1, 2] }, { a: [1, 2] })).toEqual([]);
});
