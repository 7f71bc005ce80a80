// Proves history both ways (afterSeq/limit oldest first, beforeSeq/last newest first) with the kinds, actors and paths filters, that a filter matching little scans a bounded stretch per request and says where to continue (so pages walk the whole feed, none twice, none skipped), and diff between retained versions, against real Redis.
import { beforeAll, describe, expect, test } from "vitest";
import {
  AcquireLockDocument,
  CreateContextDocument,
  GetDiffDocument,
  GetHistoryDocument,
  GetHistoryFilteredDocument,
  GetHistoryPageDocument,
  MergeContextDocument,
  PatchContextDocument,
  type GetHistoryPageQueryVariables,
} from "../gql/graphql.js";
import { errorCode, useTestServer } from "../helpers/app.js";

const server = useTestServer({ historyLimit: 5, feedRetention: 200 });

describe("history both ways, filtered", () => {
  const id = "hist-both";
  // seq 1 CREATED, 2..31 UPDATED (/a on odd n, /b/x on even n), 32 LOCK_ACQUIRED, 33 UPDATED /a
  beforeAll(async () => {
    await server.data(CreateContextDocument, { id, document: { a: 0, b: { x: 0 } } });
    for (let n = 1; n <= 30; n++) {
      await server.data(MergeContextDocument, { id, merge: n % 2 ? { a: n } : { b: { x: n } } });
    }
    await server.data(AcquireLockDocument, { contextId: id, name: "w", holder: "h", leaseMs: 60_000 });
    await server.data(MergeContextDocument, { id, merge: { a: 99 } });
  });
  const page = async (variables: Omit<GetHistoryPageQueryVariables, "id">) =>
    (await server.data(GetHistoryPageDocument, { id, ...variables })).context!.historyPage;

  test("newest first with beforeSeq/last; oldest first stays the default", async () => {
    const newest = await page({ last: 3 });
    expect(newest.changes.map((c) => c.seq)).toEqual([33, 32, 31]);
    expect(newest).toMatchObject({ scannedTo: 31, hasMore: true });
    expect((await page({ beforeSeq: 31, last: 2 })).changes.map((c) => c.seq)).toEqual([30, 29]);
    const oldest = await page({ beforeSeq: 3, last: 10 });
    expect(oldest).toMatchObject({ scannedTo: 1, hasMore: false });
    expect(oldest.changes.map((c) => c.seq)).toEqual([2, 1]);
    expect((await page({ afterSeq: 30, limit: 10 })).changes.map((c) => c.seq)).toEqual([31, 32, 33]);
    expect((await page({ limit: 2 })).changes.map((c) => c.seq)).toEqual([1, 2]);
    const plain = (await server.data(GetHistoryFilteredDocument, { id, last: 2 })).context!.history;
    expect(plain.map((c) => c.seq)).toEqual([33, 32]);
  });

  test("kinds, actors and paths filter both ways, as the subscription filter does", async () => {
    expect((await page({ last: 5, kinds: ["LOCK_ACQUIRED", "CREATED"] })).changes.map((c) => c.seq)).toEqual([32, 1]);
    expect((await page({ limit: 5, kinds: ["LOCK_ACQUIRED", "CREATED"] })).changes.map((c) => c.seq)).toEqual([1, 32]);
    // /b/x changed at even n, seq n + 1; non-document kinds are not filtered by path.
    const onB = await page({ last: 4, paths: ["/b"] });
    expect(onB.changes.map((c) => [c.seq, c.kind])).toEqual([
      [32, "LOCK_ACQUIRED"],
      [31, "UPDATED"],
      [29, "UPDATED"],
      [27, "UPDATED"],
    ]);
    expect((await page({ limit: 3, paths: ["/a"], kinds: ["UPDATED"] })).changes.map((c) => c.seq)).toEqual([2, 4, 6]);
    expect((await page({ last: 2, actors: ["anonymous"] })).changes.map((c) => c.seq)).toEqual([33, 32]);
    expect((await page({ last: 2, kinds: [] })).changes).toEqual([]);
  });

  test("a filter matching little scans at most 10 x last entries per request and pages on from scannedTo", async () => {
    // Only seq 1 is CREATED: last 1 scans at most 10 entries, 33..24, and finds none.
    const first = await page({ last: 1, kinds: ["CREATED"] });
    expect(first).toEqual({ changes: [], scannedTo: 24, hasMore: true });
    const second = await page({ beforeSeq: 24, last: 1, kinds: ["CREATED"] });
    expect(second).toEqual({ changes: [], scannedTo: 14, hasMore: true });
    const third = await page({ beforeSeq: 14, last: 1, kinds: ["CREATED"] });
    expect(third).toEqual({ changes: [], scannedTo: 4, hasMore: true });
    const fourth = await page({ beforeSeq: 4, last: 1, kinds: ["CREATED"] });
    expect(fourth.changes.map((c) => c.seq)).toEqual([1]);
    // Forward the same way, the nothing-left answer says so.
    const forward = await page({ afterSeq: 20, limit: 1, kinds: ["CREATED"] });
    expect(forward).toEqual({ changes: [], scannedTo: 30, hasMore: true });
    expect(await page({ afterSeq: 30, limit: 1, kinds: ["CREATED"] })).toEqual({ changes: [], scannedTo: 33, hasMore: false });
  });

  test("paging either way with a filter sees every match once, none skipped", async () => {
    const want = (await page({ limit: 1000 })).changes.filter((c) => c.kind === "UPDATED" && c.paths.some((p) => p.startsWith("/a")));
    for (const backward of [false, true]) {
      const seen: number[] = [];
      let cursor: number | null = null;
      for (let request = 0; request < 100; request++) {
        const got: Awaited<ReturnType<typeof page>> = await page(
          backward ? { beforeSeq: cursor, last: 2, paths: ["/a"], kinds: ["UPDATED"] } : { afterSeq: cursor, limit: 2, paths: ["/a"], kinds: ["UPDATED"] },
        );
        seen.push(...got.changes.map((c) => c.seq));
        cursor = got.scannedTo;
        if (!got.hasMore) break;
      }
      const expected = want.map((c) => c.seq);
      expect(seen).toEqual(backward ? expected.reverse() : expected);
    }
  });

  test("VALIDATION_FAILED for both directions at once, listing each problem, and for bad sizes and paths", async () => {
    const both = await server.request(GetHistoryPageDocument, { id, afterSeq: 3, beforeSeq: 9 });
    expect(errorCode(both)).toBe("VALIDATION_FAILED");
    expect(both.errors![0]!.extensions).toMatchObject({ path: "afterSeq" });
    const limitAndLast = await server.request(GetHistoryPageDocument, { id, limit: 5, last: 5 });
    expect(errorCode(limitAndLast)).toBe("VALIDATION_FAILED");
    const many = await server.request(GetHistoryPageDocument, { id, last: 0, beforeSeq: 0, paths: ["nope", "/ok", "bad"] });
    expect(many.errors![0]!.extensions?.problems).toEqual([
      { path: "last", message: "last must be between 1 and 1000" },
      { path: "beforeSeq", message: `beforeSeq must be between 1 and ${Number.MAX_SAFE_INTEGER}` },
      { path: "nope", message: '"nope" is not a JSON Pointer (RFC 6901)' },
      { path: "bad", message: '"bad" is not a JSON Pointer (RFC 6901)' },
    ]);
  });
});

test("RESYNC_REQUIRED stays for the forward read whose afterSeq was trimmed; a backward read ends at retention", async () => {
  const id = "hist-trimmed";
  await server.data(CreateContextDocument, { id, document: { n: 0 } });
  // 206 changes; feedRetention 200 keeps seqs 7..206
  for (let n = 1; n <= 205; n++) await server.data(PatchContextDocument, { id, patch: [{ op: "replace", path: "/n", value: n }] });
  const res = await server.request(GetHistoryDocument, { id, afterSeq: 1 });
  expect(errorCode(res)).toBe("RESYNC_REQUIRED");
  expect(res.errors![0]!.extensions?.oldestRetainedSeq).toBe(7);
  const back = (await server.data(GetHistoryPageDocument, { id, beforeSeq: 50, last: 1000 })).context!.historyPage;
  expect(back).toMatchObject({ scannedTo: 7, hasMore: false });
  expect(back.changes.map((c) => c.seq)).toEqual(Array.from({ length: 43 }, (_, i) => 49 - i));
});

describe("diff", () => {
  test("the patch between two retained versions, either way; [] between equal ones", async () => {
    const id = "diff-1";
    await server.data(CreateContextDocument, { id, document: { a: 1, b: { c: [1] }, gone: true } });
    await server.data(MergeContextDocument, { id, merge: { a: 2, gone: null, added: { x: 1 } } });
    await server.data(PatchContextDocument, { id, patch: [{ op: "add", path: "/b/c/-", value: 2 }] });
    const forward = (await server.data(GetDiffDocument, { id, fromVersion: 1, toVersion: 3 })).context!.diff;
    expect(forward).toEqual([
      { op: "remove", path: "/gone", from: null, value: null },
      { op: "replace", path: "/a", from: null, value: 2 },
      { op: "replace", path: "/b/c", from: null, value: [1, 2] },
      { op: "add", path: "/added", from: null, value: { x: 1 } },
    ]);
    const back = (await server.data(GetDiffDocument, { id, fromVersion: 3, toVersion: 1 })).context!.diff;
    expect(back.map((o) => [o.op, o.path])).toEqual([
      ["remove", "/added"],
      ["replace", "/a"],
      ["replace", "/b/c"],
      ["add", "/gone"],
    ]);
    expect((await server.data(GetDiffDocument, { id, fromVersion: 2, toVersion: 2 })).context!.diff).toEqual([]);
  });

  test("NOT_FOUND with oldestRetainedVersion for a version beyond retention", async () => {
    const id = "diff-2";
    await server.data(CreateContextDocument, { id, document: { n: 0 } });
    for (let n = 1; n <= 6; n++) await server.data(MergeContextDocument, { id, merge: { n } });
    // version 7; historyLimit 5 keeps 3..7
    for (const [fromVersion, toVersion] of [
      [2, 7],
      [7, 1],
      [3, 8],
    ] as const) {
      const res = await server.request(GetDiffDocument, { id, fromVersion, toVersion });
      expect(errorCode(res)).toBe("NOT_FOUND");
      expect(res.errors![0]!.extensions?.oldestRetainedVersion).toBe(3);
    }
    expect((await server.data(GetDiffDocument, { id, fromVersion: 3, toVersion: 7 })).context!.diff).toEqual([
      { op: "replace", path: "/n", from: null, value: 6 },
    ]);
  });
});
