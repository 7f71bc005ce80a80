// Proves every context operation of API.md over HTTP against real Redis: results, each error code it can return, that a refused operation changes nothing, and that a write whose result equals the current document writes nothing.
import { describe, expect, test } from "vitest";
import {
  CreateContextDocument,
  DeleteContextDocument,
  GetContextDocument,
  GetHistoryDocument,
  GetSliceDocument,
  GetSnapshotDocument,
  GetValueDocument,
  HealthDocument,
  ListContextsDocument,
  MergeContextDocument,
  PatchContextDocument,
  RollbackContextDocument,
  type PatchContextMutationVariables,
} from "../gql/graphql.js";
import { errorCode, useTestServer } from "../helpers/app.js";
import { redisState } from "../helpers/redis-state.js";

const server = useTestServer({ historyLimit: 5, feedRetention: 8, maxDocumentBytes: 4096, maxDocumentDepth: 6 });
let counter = 0;
const freshId = (label: string) => `${label}-${++counter}`;

async function create(document: unknown = { a: 1 }) {
  const id = freshId("ctx");
  await server.data(CreateContextDocument, { id, document });
  return id;
}

describe("createContext", () => {
  test("creates version 1 with seq 1 and returns the document", async () => {
    const id = freshId("create");
    const { createContext } = await server.data(CreateContextDocument, { id, document: { policy: {}, x: [1, 2] } });
    expect(createContext).toMatchObject({ id, version: 1, seq: 1, updatedBy: "anonymous", document: { policy: {}, x: [1, 2] } });
    expect(Date.parse(createContext.createdAt)).not.toBeNaN();
  });

  test("generates an id when none is given, derived from opId when there is one", async () => {
    const a = await server.data(CreateContextDocument, { document: {} });
    const b = await server.data(CreateContextDocument, { document: {} });
    expect(a.createContext.id).not.toBe(b.createContext.id);
    const c = await server.data(CreateContextDocument, { document: { n: 1 }, opId: "gen-1" });
    const d = await server.data(CreateContextDocument, { document: { n: 1 }, opId: "gen-1" });
    expect(d.createContext.id).toBe(c.createContext.id);
    expect(d.createContext.version).toBe(1);
  });

  test("ALREADY_EXISTS for a taken id", async () => {
    const id = await create();
    await server.refused("ALREADY_EXISTS", () => server.request(CreateContextDocument, { id, document: { b: 2 } }));
  });

  test("VALIDATION_FAILED for a document that is not an object, with the path", async () => {
    for (const document of [[1], "x", 3, true]) {
      const err = await server.refused("VALIDATION_FAILED", () => server.request(CreateContextDocument, { id: freshId("bad"), document }));
      expect(err.extensions?.path).toBe("");
    }
  });

  test("VALIDATION_FAILED for bad resources.limits and policy.allocation, naming the path", async () => {
    const cases: [unknown, string][] = [
      [{ resources: { limits: { credits: -1 } } }, "/resources/limits/credits"],
      [{ resources: { limits: { credits: 1.5 } } }, "/resources/limits/credits"],
      [{ resources: { limits: { "1bad": 1 } } }, "/resources/limits/1bad"],
      [{ resources: { limits: [] } }, "/resources/limits"],
      [{ policy: { allocation: { maxShare: 0 } } }, "/policy/allocation/maxShare"],
      [{ policy: { allocation: { maxShare: 1.5 } } }, "/policy/allocation/maxShare"],
      [{ policy: { allocation: { maxDepth: 0 } } }, "/policy/allocation/maxDepth"],
      [{ policy: { allocation: { defaultLeaseMs: "soon" } } }, "/policy/allocation/defaultLeaseMs"],
      [{ policy: { allocation: { profiles: { llm: { request: { credits: "x" } } } } } }, "/policy/allocation/profiles/llm/request/credits"],
    ];
    for (const [document, path] of cases) {
      const err = await server.refused("VALIDATION_FAILED", () => server.request(CreateContextDocument, { id: freshId("bad"), document }));
      expect(err.extensions?.path).toBe(path);
    }
  });

  test("VALIDATION_FAILED for an id that cannot be a context id", async () => {
    for (const id of ["has space", "brace}", "{x}", "", "-leading"]) {
      await server.refused("VALIDATION_FAILED", () => server.request(CreateContextDocument, { id, document: {} }));
    }
  });

  test("LIMIT_EXCEEDED for size and depth", async () => {
    const big = await server.refused("LIMIT_EXCEEDED", () =>
      server.request(CreateContextDocument, { id: freshId("big"), document: { s: "x".repeat(5000) } }),
    );
    expect(big.extensions).toMatchObject({ limit: "size", max: 4096 });
    const deep = await server.refused("LIMIT_EXCEEDED", () =>
      server.request(CreateContextDocument, { id: freshId("deep"), document: { a: { b: { c: { d: { e: { f: {} } } } } } } }),
    );
    expect(deep.extensions).toMatchObject({ limit: "depth", max: 6 });
  });
});

describe("context, value and slice", () => {
  test("null for a missing context", async () => {
    expect((await server.data(GetContextDocument, { id: "never-created" })).context).toBeNull();
  });

  test("value and slice resolve JSON Pointers; unresolved paths give null", async () => {
    const id = await create({ a: { "b/c": [10, 20], "~k": true }, n: null });
    const v = await server.data(GetValueDocument, { id, path: "/a/b~1c/1" });
    expect(v.context).toEqual({ version: 1, value: 20 });
    const s = await server.data(GetSliceDocument, { id, paths: ["/a/~0k", "/n", "/missing", "/a/b~1c/9", "", "/a/b~1c/01"] });
    expect(s.context?.slice).toEqual({
      "/a/~0k": true,
      "/n": null,
      "/missing": null,
      "/a/b~1c/9": null,
      "": { a: { "b/c": [10, 20], "~k": true }, n: null },
      "/a/b~1c/01": null,
    });
  });

  test("a path that is not a JSON Pointer is VALIDATION_FAILED", async () => {
    const id = await create();
    const res = await server.request(GetValueDocument, { id, path: "a/b" });
    expect(errorCode(res)).toBe("VALIDATION_FAILED");
    expect(res.errors![0]!.extensions?.path).toBe("a/b");
  });
});

describe("patchContext", () => {
  test("applies RFC 6902 ops as the next version", async () => {
    const id = await create({ list: [1, 2], obj: { k: "v" } });
    const { patchContext } = await server.data(PatchContextDocument, {
      id,
      reason: "tidy",
      patch: [
        { op: "test", path: "/obj/k", value: "v" },
        { op: "add", path: "/list/-", value: 3 },
        { op: "remove", path: "/list/0" },
        { op: "replace", path: "/obj/k", value: null },
        { op: "copy", from: "/list", path: "/copy" },
        { op: "move", from: "/obj", path: "/moved" },
      ],
    });
    expect(patchContext).toMatchObject({ version: 2, seq: 2, document: { list: [2, 3], copy: [2, 3], moved: { k: null } } });
  });

  test("NOT_FOUND for a missing context", async () => {
    await server.refused("NOT_FOUND", () => server.request(PatchContextDocument, { id: "missing-1", patch: [{ op: "add", path: "/a", value: 1 }] }));
  });

  test("INVALID_PATCH is all-or-nothing and names the failing operation", async () => {
    const id = await create({ a: 1 });
    const cases = [
      [{ op: "add", path: "/b", value: 2 }, { op: "remove", path: "/nope" }],
      [{ op: "add", path: "/b", value: 2 }, { op: "test", path: "/a", value: 2 }],
      [{ op: "add", path: "/b", value: 2 }, { op: "add", path: "/x/y", value: 1 }],
      [{ op: "add", path: "/b", value: 2 }, { op: "add", path: "no-slash", value: 1 }],
      [{ op: "add", path: "/b", value: 2 }, { op: "replace", path: "/a" }],
      [{ op: "add", path: "/b", value: 2 }, { op: "move", path: "/c" }],
    ] as const;
    for (const patch of cases) {
      const err = await server.refused("INVALID_PATCH", () => server.request(PatchContextDocument, { id, patch: patch as never }));
      expect(err.extensions?.operationIndex).toBe(1);
    }
    expect((await server.data(GetContextDocument, { id })).context).toMatchObject({ version: 1, document: { a: 1 } });
  });

  test("VALIDATION_FAILED when the result breaks a rule; LIMIT_EXCEEDED when it is too big", async () => {
    const id = await create({ a: 1 });
    await server.refused("VALIDATION_FAILED", () =>
      server.request(PatchContextDocument, { id, patch: [{ op: "add", path: "/resources", value: { limits: { credits: -5 } } }] }),
    );
    await server.refused("VALIDATION_FAILED", () => server.request(PatchContextDocument, { id, patch: [{ op: "replace", path: "", value: [] }] }));
    await server.refused("LIMIT_EXCEEDED", () =>
      server.request(PatchContextDocument, { id, patch: [{ op: "add", path: "/s", value: "y".repeat(5000) }] }),
    );
  });

  test("VERSION_CONFLICT with currentVersion when expectedVersion is stale", async () => {
    const id = await create({ a: 1 });
    await server.data(PatchContextDocument, { id, expectedVersion: 1, patch: [{ op: "add", path: "/b", value: 1 }] });
    const err = await server.refused("VERSION_CONFLICT", () =>
      server.request(PatchContextDocument, { id, expectedVersion: 1, patch: [{ op: "add", path: "/c", value: 1 }] }),
    );
    expect(err.extensions?.currentVersion).toBe(2);
  });

  test("an opId reused for a different operation is VALIDATION_FAILED on opId", async () => {
    const id = await create({ a: 1 });
    await server.data(PatchContextDocument, { id, opId: "reuse", patch: [{ op: "add", path: "/b", value: 1 }] });
    const err = await server.refused("VALIDATION_FAILED", () =>
      server.request(PatchContextDocument, { id, opId: "reuse", patch: [{ op: "add", path: "/b", value: 2 }] }),
    );
    expect(err.extensions?.path).toBe("opId");
  });
});

describe("mergeContext", () => {
  test("applies RFC 7386 as the next version", async () => {
    const id = await create({ a: { b: 1, c: 2 }, d: [1] });
    const { mergeContext } = await server.data(MergeContextDocument, { id, merge: { a: { c: null, e: 3 }, d: null, f: { g: null, h: 1 } } });
    expect(mergeContext).toMatchObject({ version: 2, document: { a: { b: 1, e: 3 }, f: { h: 1 } } });
  });

  test("NOT_FOUND, VERSION_CONFLICT, VALIDATION_FAILED and LIMIT_EXCEEDED change nothing", async () => {
    const id = await create({ a: 1 });
    await server.refused("NOT_FOUND", () => server.request(MergeContextDocument, { id: "missing-2", merge: { a: 2 } }));
    const conflict = await server.refused("VERSION_CONFLICT", () => server.request(MergeContextDocument, { id, merge: { a: 2 }, expectedVersion: 7 }));
    expect(conflict.extensions?.currentVersion).toBe(1);
    await server.refused("VALIDATION_FAILED", () => server.request(MergeContextDocument, { id, merge: [1, 2] }));
    await server.refused("VALIDATION_FAILED", () => server.request(MergeContextDocument, { id, merge: { policy: { allocation: { maxShare: 2 } } } }));
    await server.refused("LIMIT_EXCEEDED", () => server.request(MergeContextDocument, { id, merge: { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } } }));
  });
});

describe("rollbackContext and snapshot", () => {
  test("rollback writes the old document as a new version", async () => {
    const id = await create({ step: 1 });
    await server.data(MergeContextDocument, { id, merge: { step: 2, extra: true } });
    await server.data(MergeContextDocument, { id, merge: { step: 3 } });
    const { rollbackContext } = await server.data(RollbackContextDocument, { id, toVersion: 1, reason: "bad run" });
    expect(rollbackContext).toMatchObject({ version: 4, document: { step: 1 } });
    expect((await server.data(GetSnapshotDocument, { id, version: 2 })).context?.snapshot).toEqual({ step: 2, extra: true });
    expect((await server.data(GetContextDocument, { id })).context).toMatchObject({ version: 4, document: { step: 1 } });
  });

  test("a snapshot beyond retention is NOT_FOUND naming the retained range", async () => {
    const id = await create({ n: 0 });
    for (let n = 1; n <= 6; n++) await server.data(MergeContextDocument, { id, merge: { n } });
    // version 7 now; historyLimit 5 keeps versions 3..7
    const res = await server.request(GetSnapshotDocument, { id, version: 2 });
    expect(errorCode(res)).toBe("NOT_FOUND");
    expect(res.errors![0]!.extensions).toMatchObject({ oldestRetainedVersion: 3, currentVersion: 7 });
    expect((await server.data(GetSnapshotDocument, { id, version: 3 })).context?.snapshot).toEqual({ n: 2 });
    await server.refused("NOT_FOUND", () => server.request(RollbackContextDocument, { id, toVersion: 2 }));
    await server.refused("NOT_FOUND", () => server.request(RollbackContextDocument, { id, toVersion: 99 }));
  });

  test("NOT_FOUND for a missing context and VERSION_CONFLICT for a stale expectedVersion", async () => {
    await server.refused("NOT_FOUND", () => server.request(RollbackContextDocument, { id: "missing-3", toVersion: 1 }));
    const id = await create({ a: 1 });
    await server.data(MergeContextDocument, { id, merge: { a: 2 } });
    const err = await server.refused("VERSION_CONFLICT", () => server.request(RollbackContextDocument, { id, toVersion: 1, expectedVersion: 1 }));
    expect(err.extensions?.currentVersion).toBe(2);
  });
});

describe("writes that change nothing", () => {
  /** Runs a write that must leave every key as it was (no version, no feed entry) and returns its answer. */
  async function unchanged<T>(run: () => Promise<T>): Promise<T> {
    const before = await redisState(server.redis, server.config.keyPrefix);
    const answer = await run();
    expect(await redisState(server.redis, server.config.keyPrefix)).toEqual(before);
    return answer;
  }

  test("only test ops, a replace with the same value, an idle merge and a rollback to an equal document answer the current version", async () => {
    const id = await create({ a: 1, o: { k: "v" } });
    await server.data(MergeContextDocument, { id, merge: { a: 2 } });
    await server.data(MergeContextDocument, { id, merge: { a: 1 } });
    const current = (await server.data(GetContextDocument, { id })).context!;
    expect(current).toMatchObject({ version: 3, seq: 3 });
    const patch = (ops: PatchContextMutationVariables["patch"]) => server.data(PatchContextDocument, { id, patch: ops }).then((r) => r.patchContext);
    const writes = [
      () => patch([{ op: "test", path: "/a", value: 1 }, { op: "test", path: "/o", value: { k: "v" } }]),
      () => patch([{ op: "replace", path: "/a", value: 1 }]),
      () => patch([{ op: "remove", path: "/a" }, { op: "add", path: "/a", value: 1 }]),
      () => server.data(MergeContextDocument, { id, merge: { a: 1, o: { k: "v" }, absent: null } }).then((r) => r.mergeContext),
      () => server.data(RollbackContextDocument, { id, toVersion: 1, expectedVersion: 3 }).then((r) => r.rollbackContext),
    ];
    for (const write of writes) expect(await unchanged(write)).toEqual(current);
    expect((await server.data(GetHistoryDocument, { id })).context!.history.map((e) => e.kind)).toEqual(["CREATED", "UPDATED", "UPDATED"]);
  });

  test("with an opId, a retry gets the first answer even after the context moved on", async () => {
    const id = await create({ a: 1 });
    const patch = [{ op: "test" as const, path: "/a", value: 1 }];
    expect((await server.data(PatchContextDocument, { id, opId: "idle-1", patch })).patchContext).toMatchObject({ version: 1, seq: 1 });
    await server.data(MergeContextDocument, { id, merge: { a: 2 } });
    const retry = await unchanged(() => server.data(PatchContextDocument, { id, opId: "idle-1", patch }));
    expect(retry.patchContext).toMatchObject({ version: 1, seq: 1, document: { a: 1 } });
  });

  test("a failing test op is still INVALID_PATCH and a stale expectedVersion still VERSION_CONFLICT", async () => {
    const id = await create({ a: 1 });
    await server.refused("INVALID_PATCH", () => server.request(PatchContextDocument, { id, patch: [{ op: "test", path: "/a", value: 2 }] }));
    await server.refused("VERSION_CONFLICT", () =>
      server.request(PatchContextDocument, { id, expectedVersion: 2, patch: [{ op: "test", path: "/a", value: 1 }] }),
    );
    await server.refused("VERSION_CONFLICT", () => server.request(MergeContextDocument, { id, expectedVersion: 0, merge: { a: 1 } }));
  });
});

describe("deleteContext", () => {
  test("deletes, records DELETED, and the id can be created again with seq continuing", async () => {
    const id = await create({ a: 1 });
    const { deleteContext } = await server.data(DeleteContextDocument, { id });
    expect(deleteContext).toEqual({ id, version: 1, seq: 2 });
    expect((await server.data(GetContextDocument, { id })).context).toBeNull();
    const again = await server.data(CreateContextDocument, { id, document: { b: 1 } });
    expect(again.createContext).toMatchObject({ version: 1, seq: 3 });
  });

  test("NOT_FOUND and VERSION_CONFLICT change nothing", async () => {
    await server.refused("NOT_FOUND", () => server.request(DeleteContextDocument, { id: "missing-4" }));
    const id = await create();
    const err = await server.refused("VERSION_CONFLICT", () => server.request(DeleteContextDocument, { id, expectedVersion: 3 }));
    expect(err.extensions?.currentVersion).toBe(1);
  });
});

describe("contexts", () => {
  test("pages through ids in order with idPrefix, skipping deleted ones", async () => {
    const ids = ["page-a", "page-b", "page-c", "page-d", "page-e"];
    for (const id of ids) await server.data(CreateContextDocument, { id, document: {} });
    await server.data(CreateContextDocument, { id: "pagex-1", document: {} });
    await server.data(DeleteContextDocument, { id: "page-c" });
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page: { contexts: { edges: { node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor?: string | null } } } =
        await server.data(ListContextsDocument, { first: 2, after, idPrefix: "page-" });
      seen.push(...page.contexts.edges.map((e) => e.node.id));
      if (!page.contexts.pageInfo.hasNextPage) break;
      after = page.contexts.pageInfo.endCursor!;
    }
    expect(seen).toEqual(["page-a", "page-b", "page-d", "page-e"]);
  });

  test("VALIDATION_FAILED for a page size out of range", async () => {
    expect(errorCode(await server.request(ListContextsDocument, { first: 0 }))).toBe("VALIDATION_FAILED");
    expect(errorCode(await server.request(ListContextsDocument, { first: 501 }))).toBe("VALIDATION_FAILED");
  });
});

describe("history", () => {
  test("RESYNC_REQUIRED when the entries after afterSeq are no longer retained", async () => {
    const id = await create({ n: 0 });
    for (let n = 1; n <= 10; n++) await server.data(MergeContextDocument, { id, merge: { n } });
    // 11 entries, feedRetention 8 keeps seqs 4..11
    const all = await server.data(GetHistoryDocument, { id });
    expect(all.context?.history.map((c) => c.seq)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect((await server.data(GetHistoryDocument, { id, afterSeq: 3 })).context?.history[0]?.seq).toBe(4);
    const res = await server.request(GetHistoryDocument, { id, afterSeq: 2 });
    expect(errorCode(res)).toBe("RESYNC_REQUIRED");
    expect(res.errors![0]!.extensions?.oldestRetainedSeq).toBe(4);
    expect(errorCode(await server.request(GetHistoryDocument, { id, limit: 0 }))).toBe("VALIDATION_FAILED");
  });
});

test("health reports Redis reachable", async () => {
  const { health } = await server.data(HealthDocument);
  expect(health.ok).toBe(true);
  expect(health.redisReachable).toBe(true);
  expect(health.redisLatencyMs).toBeGreaterThanOrEqual(0);
});
