// Proves the document cache's eviction: least recently used first (a get counts as use) once more than maxBytes is held, each entry's bytes counted once however often it is replaced or deleted, and an entry larger than the whole cache never kept.
import { expect, test } from "vitest";
import { DocumentCache, type Head } from "../../src/store/document-cache.js";

const head = (version: number, bytes: number): Head => ({ version, head: `h${version}`, document: { version }, bytes });
const held = (cache: DocumentCache, ids: string[]) => ids.filter((id) => cache.get(id) !== undefined);

test("past maxBytes the least recently set entries go first, until what is held fits", () => {
  const cache = new DocumentCache(100);
  cache.set("a", head(1, 40));
  cache.set("b", head(1, 40));
  cache.set("c", head(1, 40));
  expect(held(cache, ["a", "b", "c"])).toEqual(["b", "c"]);
  cache.set("d", head(1, 90));
  expect(held(cache, ["b", "c", "d"])).toEqual(["d"]);
});

test("a get makes an entry the most recently used", () => {
  const cache = new DocumentCache(100);
  cache.set("a", head(1, 40));
  cache.set("b", head(1, 40));
  expect(cache.get("a")?.version).toBe(1);
  cache.set("c", head(1, 40));
  expect(held(cache, ["a", "b", "c"])).toEqual(["a", "c"]);
});

test("a replaced or deleted entry's bytes count once", () => {
  const cache = new DocumentCache(100);
  cache.set("a", head(1, 40));
  cache.set("a", head(2, 60));
  cache.set("b", head(1, 40));
  expect(cache.get("a")).toMatchObject({ version: 2, bytes: 60 });
  expect(held(cache, ["a", "b"])).toEqual(["a", "b"]);
  cache.delete("a");
  cache.delete("a");
  cache.set("c", head(1, 60));
  expect(held(cache, ["a", "b", "c"])).toEqual(["b", "c"]);
});

test("an entry larger than the whole cache is not kept, and its older version goes", () => {
  const cache = new DocumentCache(100);
  cache.set("a", head(1, 40));
  cache.set("b", head(1, 40));
  cache.set("a", head(2, 101));
  expect(cache.get("a")).toBeUndefined();
  // What the older version held is free again: b and a new 60 fit.
  cache.set("c", head(1, 60));
  expect(held(cache, ["b", "c"])).toEqual(["b", "c"]);
});
