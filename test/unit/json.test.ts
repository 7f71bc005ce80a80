// Proves the JSON machinery the server relies on: RFC 6901 pointers, RFC 6902 patches (all-or-nothing, never mutating), RFC 7386 merges and document diffs that replay exactly, and stack-safe depth checks.
import { describe, expect, test } from "vitest";
import { AppError } from "../../src/errors.js";
import { diffDocuments } from "../../src/json/diff.js";
import { applyMergePatch } from "../../src/json/merge.js";
import { applyPatch, type PatchOperation } from "../../src/json/patch.js";
import { formatPointer, parsePointer, pointersOverlap, valueAt } from "../../src/json/pointer.js";
import { jsonDepth, jsonEqual, type JsonValue } from "../../src/json/types.js";

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

function patchError(doc: JsonValue, patch: PatchOperation[]): AppError {
  try {
    applyPatch(deepFreeze(doc), patch);
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error("patch did not fail");
}

describe("pointers", () => {
  test("parse and format round-trip with ~0 and ~1 escapes", () => {
    expect(parsePointer("")).toEqual([]);
    expect(parsePointer("/a~1b/~0c/~01")).toEqual(["a/b", "~c", "~1"]);
    expect(formatPointer(["a/b", "~c", "~1"])).toBe("/a~1b/~0c/~01");
    expect(parsePointer("a")).toBeNull();
  });

  test("valueAt reads own properties only and strict array indexes", () => {
    const doc = { a: [1, 2], o: {} };
    expect(valueAt(doc, ["a", "1"])).toBe(2);
    expect(valueAt(doc, ["a", "01"])).toBeUndefined();
    expect(valueAt(doc, ["a", "-"])).toBeUndefined();
    expect(valueAt(doc, ["o", "__proto__"])).toBeUndefined();
    expect(valueAt(doc, ["o", "constructor"])).toBeUndefined();
  });

  test("overlap is on whole segments", () => {
    expect(pointersOverlap(["a"], ["a", "b"])).toBe(true);
    expect(pointersOverlap([], ["x"])).toBe(true);
    expect(pointersOverlap(["a", "b"], ["a", "bc"])).toBe(false);
  });
});

describe("applyPatch", () => {
  test("RFC 6902 appendix A examples", () => {
    const cases: [JsonValue, PatchOperation[], JsonValue][] = [
      [{ foo: "bar" }, [{ op: "add", path: "/baz", value: "qux" }], { baz: "qux", foo: "bar" }],
      [{ foo: ["bar", "baz"] }, [{ op: "add", path: "/foo/1", value: "qux" }], { foo: ["bar", "qux", "baz"] }],
      [{ baz: "qux", foo: "bar" }, [{ op: "remove", path: "/baz" }], { foo: "bar" }],
      [{ foo: ["bar", "qux", "baz"] }, [{ op: "remove", path: "/foo/1" }], { foo: ["bar", "baz"] }],
      [{ baz: "qux", foo: "bar" }, [{ op: "replace", path: "/baz", value: "boo" }], { baz: "boo", foo: "bar" }],
      [
        { foo: { bar: "baz", waldo: "fred" }, qux: { corge: "grault" } },
        [{ op: "move", from: "/foo/waldo", path: "/qux/thud" }],
        { foo: { bar: "baz" }, qux: { corge: "grault", thud: "fred" } },
      ],
      [{ foo: ["all", "grass", "cows", "eat"] }, [{ op: "move", from: "/foo/1", path: "/foo/3" }], { foo: ["all", "cows", "eat", "grass"] }],
      [{ foo: "bar" }, [{ op: "add", path: "/child", value: { grandchild: {} } }], { foo: "bar", child: { grandchild: {} } }],
      [{ foo: ["bar"] }, [{ op: "add", path: "/foo/-", value: ["abc", "def"] }], { foo: ["bar", ["abc", "def"]] }],
      [{ foo: null }, [{ op: "test", path: "/foo", value: null }], { foo: null }],
      [{ "/": 9, "~1": 10 }, [{ op: "test", path: "/~01", value: 10 }], { "/": 9, "~1": 10 }],
      [{ a: 1 }, [{ op: "copy", from: "/a", path: "/b" }], { a: 1, b: 1 }],
      [{ a: 1 }, [{ op: "add", path: "", value: { b: 2 } }], { b: 2 }],
    ];
    for (const [doc, patch, expected] of cases) {
      expect(applyPatch(deepFreeze(structuredClone(doc)), patch).document).toEqual(expected);
    }
  });

  test("failures name the operation and leave the input untouched", () => {
    const doc = { a: 1, list: [1] };
    const bad: PatchOperation[] = [
      { op: "remove", path: "/missing" },
      { op: "replace", path: "/missing", value: 1 },
      { op: "add", path: "/x/y", value: 1 },
      { op: "add", path: "/list/2", value: 1 },
      { op: "add", path: "/list/01", value: 1 },
      { op: "add", path: "/a" },
      { op: "add", path: "nope", value: 1 },
      { op: "move", from: "/list", path: "/list/0" },
      { op: "test", path: "/a", value: "1" },
      { op: "remove", path: "" },
      { op: "copy", path: "/b" },
    ];
    for (const op of bad) {
      const err = patchError(doc, [{ op: "add", path: "/ok", value: true }, op]);
      expect(err.code).toBe("INVALID_PATCH");
      expect(err.details.operationIndex).toBe(1);
    }
    expect(doc).toEqual({ a: 1, list: [1] });
  });

  test("paths list what each op touched; test touches nothing", () => {
    const { paths } = applyPatch({ a: { b: 1 }, c: 2 }, [
      { op: "test", path: "/c", value: 2 },
      { op: "move", from: "/a/b", path: "/d" },
      { op: "add", path: "/e", value: null },
    ]);
    expect(paths).toEqual(["/a/b", "/d", "/e"]);
  });

  test("unchanged parts are shared, not copied", () => {
    const doc = deepFreeze({ big: { x: [1, 2, 3] }, small: { n: 1 } });
    const out = applyPatch(doc, [{ op: "replace", path: "/small/n", value: 2 }]).document as typeof doc;
    expect(out.big).toBe(doc.big);
    expect(out.small).toEqual({ n: 2 });
  });
});

describe("applyMergePatch", () => {
  test("RFC 7386 appendix A, and the emitted JSON Patch replays to the same result", () => {
    const cases: [JsonValue, JsonValue, JsonValue][] = [
      [{ a: "b" }, { a: "c" }, { a: "c" }],
      [{ a: "b" }, { b: "c" }, { a: "b", b: "c" }],
      [{ a: "b" }, { a: null }, {}],
      [{ a: "b", b: "c" }, { a: null }, { b: "c" }],
      [{ a: ["b"] }, { a: "c" }, { a: "c" }],
      [{ a: "c" }, { a: ["b"] }, { a: ["b"] }],
      [{ a: { b: "c" } }, { a: { b: "d", c: null } }, { a: { b: "d" } }],
      [{ a: [{ b: "c" }] }, { a: [1] }, { a: [1] }],
      [["a", "b"], ["c", "d"], ["c", "d"]],
      [{ a: "b" }, ["c"], ["c"]],
      [{ a: "foo" }, null, null],
      [{ a: "foo" }, "bar", "bar"],
      [{ e: null }, { a: 1 }, { e: null, a: 1 }],
      [[1, 2], { a: "b", c: null }, { a: "b" }],
      [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
    ];
    for (const [target, patch, expected] of cases) {
      const change = applyMergePatch(deepFreeze(structuredClone(target)), patch);
      expect(change.document).toEqual(expected);
      expect(applyPatch(target, [...change.patch]).document).toEqual(expected);
    }
  });
});

describe("diffDocuments", () => {
  test("the diff replays from before to after; equal documents give no ops", () => {
    const pairs: [JsonValue, JsonValue][] = [
      [{ a: 1, b: { c: [1, 2], d: "x" } }, { a: 2, b: { c: [1], e: null } }],
      [{ a: { b: { c: 1 } } }, { a: "flat" }],
      [{ a: [1, { b: 2 }] }, { a: [1, { b: 3 }] }],
      [{}, { n: { m: {} } }],
    ];
    for (const [before, after] of pairs) {
      const change = diffDocuments(before, after);
      expect(applyPatch(before, [...change.patch]).document).toEqual(after);
    }
    expect(diffDocuments({ a: [1], b: { c: 1 } }, { b: { c: 1 }, a: [1] }).patch).toEqual([]);
  });
});

describe("equality and depth", () => {
  test("jsonEqual ignores key order but not types", () => {
    expect(jsonEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).toBe(true);
    expect(jsonEqual({ a: 1 }, { a: "1" })).toBe(false);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
    expect(jsonEqual({ a: undefined as never }, { b: undefined as never })).toBe(false);
  });

  test("jsonDepth counts containers and stops past the limit without recursion", () => {
    expect(jsonDepth(5, 10)).toBe(0);
    expect(jsonDepth({}, 10)).toBe(1);
    expect(jsonDepth({ a: [{ b: 1 }] }, 10)).toBe(3);
    let deep: JsonValue = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(jsonDepth(deep, 32)).toBe(33);
  });
});
