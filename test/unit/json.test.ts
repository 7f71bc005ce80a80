// Proves the JSON machinery the server relies on: RFC 6901 pointers, RFC 6902 patches (all-or-nothing, never mutating), RFC 7386 merges and document diffs that replay exactly, member names such as __proto__ kept as data, and stack-safe depth checks.
import fc from "fast-check";
import { afterEach, describe, expect, test } from "vitest";
import { AppError } from "../../src/errors.js";
import { diffDocuments } from "../../src/json/diff.js";
import { applyMergePatch } from "../../src/json/merge.js";
import { applyPatch, type PatchOperation } from "../../src/json/patch.js";
import { formatPointer, parsePointer, pointersOverlap, valueAt } from "../../src/json/pointer.js";
import { isJsonObject, jsonDepth, jsonEqual, type JsonValue } from "../../src/json/types.js";

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

  test("pointers overlap when equal or one is a prefix of the other on whole segments", () => {
    expect(pointersOverlap("/a/b", "/a/b")).toBe(true);
    expect(pointersOverlap("/a", "/a/b/c")).toBe(true);
    expect(pointersOverlap("/a/b/c", "/a")).toBe(true);
    expect(pointersOverlap("", "/anything")).toBe(true);
    expect(pointersOverlap("/a", "/ab")).toBe(false);
    expect(pointersOverlap("/a~1b", "/a/b")).toBe(false);
    expect(pointersOverlap("/a/b", "/a/c")).toBe(false);
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

describe("member names that Object.prototype also has", () => {
  const NAMES = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "a"] as const;

  // JSON text, parsed with JSON.parse as a client's request is, so "__proto__" is an own member.
  const { value: jsonText } = fc.letrec<{ value: string; object: string }>((tie) => ({
    value: fc.oneof({ depthSize: "small" }, fc.constantFrom("1", "null", '"s"', "[]"), tie("object"), tie("object")),
    object: fc
      .uniqueArray(fc.tuple(fc.constantFrom(...NAMES), tie("value")), { selector: ([name]) => name, maxLength: 3 })
      .map((members) => `{${members.map(([name, v]) => `${JSON.stringify(name)}:${v}`).join(",")}}`),
  }));
  const objectArb = jsonText.map((text) => JSON.parse(text) as JsonValue).filter(isJsonObject);
  const anyArb = jsonText.map((text) => JSON.parse(text) as JsonValue);

  /** RFC 7386 section 2 on Maps: a model that has no prototype to confuse with a member. */
  type Model = null | boolean | number | string | Model[] | Map<string, Model>;
  const toModel = (v: JsonValue): Model =>
    Array.isArray(v) ? v.map(toModel) : isJsonObject(v) ? new Map(Object.entries(v).map(([k, x]) => [k, toModel(x)])) : v;
  const modelText = (m: Model): string =>
    m instanceof Map
      ? `{${[...m].map(([k, v]) => `${JSON.stringify(k)}:${modelText(v)}`).join(",")}}`
      : Array.isArray(m)
        ? `[${m.map(modelText).join(",")}]`
        : JSON.stringify(m);
  function mergeModel(target: Model, patch: Model): Model {
    if (!(patch instanceof Map)) return patch;
    const out = new Map(target instanceof Map ? target : []);
    for (const [name, v] of patch) {
      if (v === null) out.delete(name);
      else out.set(name, mergeModel(out.get(name) ?? null, v));
    }
    return out;
  }

  /** Every pointer that resolves in `v`, the whole document first. */
  function pointersOf(v: JsonValue, at: string[] = []): string[][] {
    const children = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : isJsonObject(v) ? Object.entries(v) : [];
    return [at, ...children.flatMap(([k, x]) => pointersOf(x, [...at, k]))];
  }

  /** Throws unless every object in `v` still has a plain prototype and the document survives JSON text. */
  function expectPlain(v: JsonValue): void {
    for (const segments of pointersOf(v)) {
      const node = valueAt(v, segments);
      if (isJsonObject(node)) expect([Object.prototype, null]).toContain(Object.getPrototypeOf(node));
    }
    expect(jsonEqual(JSON.parse(JSON.stringify(v)) as JsonValue, v)).toBe(true);
  }
  const prototypeNames = Object.getOwnPropertyNames(Object.prototype);
  afterEach(() => expect(Object.getOwnPropertyNames(Object.prototype)).toEqual(prototypeNames));

  test('a merge keeps a member named "__proto__" as data (the issue\'s reproduction)', () => {
    const change = applyMergePatch(JSON.parse('{"a":{}}'), JSON.parse('{"a":{"__proto__":{"x":1}}}'));
    expect(JSON.stringify(change.document)).toBe('{"a":{"__proto__":{"x":1}}}');
    expect(Object.getPrototypeOf((change.document as { a: object }).a)).toBe(Object.prototype);
    expect(change.paths).toEqual(["/a/__proto__"]);
    const fresh = applyMergePatch({}, JSON.parse('{"a":{"constructor":{"prototype":{"__proto__":null,"x":null,"y":1}}}}'));
    expect(JSON.stringify(fresh.document)).toBe('{"a":{"constructor":{"prototype":{"y":1}}}}');
  });

  test("merge agrees with RFC 7386 on Maps, and its JSON Patch replays to the same document", () => {
    fc.assert(
      fc.property(objectArb, anyArb, (target, patch) => {
        const change = applyMergePatch(deepFreeze(target), patch);
        const expected = JSON.parse(modelText(mergeModel(toModel(target), toModel(patch)))) as JsonValue;
        expect(jsonEqual(change.document, expected), `${JSON.stringify(change.document)} != ${JSON.stringify(expected)}`).toBe(true);
        expect(jsonEqual(applyPatch(target, [...change.patch]).document, expected)).toBe(true);
        expectPlain(change.document);
      }),
      { numRuns: 300 },
    );
  });

  test("diffs between such documents replay exactly", () => {
    fc.assert(
      fc.property(objectArb, objectArb, (before, after) => {
        const change = diffDocuments(deepFreeze(before), deepFreeze(after));
        const replayed = applyPatch(before, [...change.patch]).document;
        expect(jsonEqual(replayed, after)).toBe(true);
        expectPlain(replayed);
      }),
      { numRuns: 300 },
    );
  });

  test("every patch op works at and below such members", () => {
    const arb = objectArb.chain((doc) =>
      fc.tuple(fc.constant(doc), fc.constantFrom(...pointersOf(doc)), fc.constantFrom(...NAMES)),
    );
    fc.assert(
      fc.property(arb, ([doc, at, name]) => {
        deepFreeze(doc);
        const run = (ops: PatchOperation[]) => {
          const out = applyPatch(doc, ops).document;
          expectPlain(out);
          return out;
        };
        const p = formatPointer(at);
        const current = valueAt(doc, at)!;
        expect(run([{ op: "test", path: p, value: current }])).toBe(doc);
        if (isJsonObject(current)) {
          const child = [...at, name];
          const added = run([{ op: "add", path: formatPointer(child), value: { [name]: 7 } }]);
          expect(JSON.stringify(valueAt(added, child))).toBe(JSON.stringify({ [name]: 7 }));
        }
        if (at.length === 0) return;
        expect(valueAt(run([{ op: "replace", path: p, value: 7 }]), at)).toBe(7);
        const parent = valueAt(doc, at.slice(0, -1))!;
        const removed = run([{ op: "remove", path: p }]);
        if (isJsonObject(parent)) expect(Object.hasOwn(valueAt(removed, at.slice(0, -1)) as object, at.at(-1)!)).toBe(false);
        const target = ["moved", name];
        const copied = run([{ op: "add", path: "/moved", value: {} }, { op: "copy", from: p, path: formatPointer(target) }]);
        expect(jsonEqual(valueAt(copied, target)!, current)).toBe(true);
        const moved = run([{ op: "add", path: "/moved", value: {} }, { op: "move", from: p, path: formatPointer(target) }]);
        expect(jsonEqual(valueAt(moved, target)!, current)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
