// Proves the edits a console can preview: dryRun on createContext, patchContext, mergeContext and rollbackContext answers what the write would produce after every check the write runs and writes nothing (no version, seq, feed entry, opId record or index entry), and VALIDATION_FAILED lists every problem of one input in extensions.problems, against real Redis.
import { describe, expect, test } from "vitest";
import {
  AcquireLockDocument,
  AllocateDocument,
  CreateContextDocument,
  CreateContextDryDocument,
  GetContextDocument,
  MergeContextDocument,
  MergeContextDryDocument,
  PatchContextDryDocument,
  RollbackContextDryDocument,
} from "../gql/graphql.js";
import { Keys } from "../../src/redis/keys.js";
import { useTestServer } from "../helpers/app.js";
import { redisState } from "../helpers/redis-state.js";

const server = useTestServer({ historyLimit: 5, maxDocumentBytes: 4096 });
let counter = 0;
const freshId = (label: string) => `${label}-${++counter}`;

/** Every key under the server's prefix: a dry run must leave all of them as they were. */
const state = () => redisState(server.redis, server.config.keyPrefix);
const opKey = (id: string, opId: string) => new Keys(server.config.keyPrefix).op(id, opId);

async function unchangedBy<T>(run: () => Promise<T>): Promise<T> {
  const before = await state();
  const result = await run();
  expect(await state(), "a dry run wrote nothing").toEqual(before);
  return result;
}

async function create(document: unknown = { a: 1 }) {
  const id = freshId("prev");
  await server.data(CreateContextDocument, { id, document });
  await server.data(MergeContextDocument, { id, merge: { b: 2 } });
  return id; // version 2, seq 2
}

describe("dryRun", () => {
  test("createContext: the context as it would be, nothing written, not even the index entry", async () => {
    const id = freshId("dry-create");
    const dry = await unchangedBy(async () => (await server.data(CreateContextDryDocument, { id, document: { x: 1 }, opId: "op-c", dryRun: true })).createContext);
    expect(dry).toMatchObject({ id, version: 1, seq: 1, updatedBy: "anonymous", document: { x: 1 } });
    expect((await server.data(GetContextDocument, { id })).context).toBeNull();
    expect(await server.redis.exists(opKey(id, "op-c"))).toBe(0);
    // The opId was not recorded: the same call without dryRun applies it.
    const real = (await server.data(CreateContextDryDocument, { id, document: { x: 1 }, opId: "op-c" })).createContext;
    expect(real).toMatchObject({ id, version: 1, seq: 1 });
    expect(await server.redis.exists(opKey(id, "op-c"))).toBe(1);
    // A dry run of a recorded opId answers the recorded outcome, as the retry would.
    const replay = await unchangedBy(async () => (await server.data(CreateContextDryDocument, { id, document: { x: 1 }, opId: "op-c", dryRun: true })).createContext);
    expect(replay).toMatchObject({ id, version: 1, seq: 1, createdAt: real.createdAt, document: { x: 1 } });
  });

  test("createContext: ALREADY_EXISTS and VALIDATION_FAILED as the write", async () => {
    const id = await create();
    await server.refused("ALREADY_EXISTS", () => server.request(CreateContextDryDocument, { id, document: {}, dryRun: true }));
    await server.refused("VALIDATION_FAILED", () => server.request(CreateContextDryDocument, { id: freshId("bad"), document: [1], dryRun: true }));
  });

  test("patch, merge, rollback: the next version and seq with its document, nothing written", async () => {
    const id = await create();
    const patched = await unchangedBy(async () =>
      (await server.data(PatchContextDryDocument, { id, patch: [{ op: "add", path: "/c", value: 3 }], expectedVersion: 2, opId: "op-p", dryRun: true })).patchContext,
    );
    expect(patched).toMatchObject({ id, version: 3, seq: 3, document: { a: 1, b: 2, c: 3 } });
    expect(await server.redis.exists(opKey(id, "op-p"))).toBe(0);
    const merged = await unchangedBy(async () => (await server.data(MergeContextDryDocument, { id, merge: { a: null }, dryRun: true })).mergeContext);
    expect(merged).toMatchObject({ version: 3, seq: 3, document: { b: 2 } });
    const rolled = await unchangedBy(async () => (await server.data(RollbackContextDryDocument, { id, toVersion: 1, dryRun: true })).rollbackContext);
    expect(rolled).toMatchObject({ version: 3, seq: 3, document: { a: 1 } });
    // A change that changes nothing previews the current version.
    const idle = await unchangedBy(async () => (await server.data(MergeContextDryDocument, { id, merge: { b: 2 }, dryRun: true })).mergeContext);
    expect(idle).toMatchObject({ version: 2, seq: 2, document: { a: 1, b: 2 } });
    const current = (await server.data(GetContextDocument, { id })).context!;
    expect(current).toMatchObject({ version: 2, seq: 2, document: { a: 1, b: 2 } });
    expect(await server.redis.xlen(new Keys(server.config.keyPrefix).context(id).feed)).toBe(2);
  });

  test("a dry run after a write previews from what that write left (no stale cache), and a write after a dry run is the real next version", async () => {
    const id = await create();
    await server.data(PatchContextDryDocument, { id, patch: [{ op: "add", path: "/c", value: 3 }], dryRun: true });
    const real = (await server.data(MergeContextDryDocument, { id, merge: { d: 4 } })).mergeContext;
    expect(real).toMatchObject({ version: 3, seq: 3, document: { a: 1, b: 2, d: 4 } });
    const dry = (await server.data(MergeContextDryDocument, { id, merge: { e: 5 }, dryRun: true })).mergeContext;
    expect(dry).toMatchObject({ version: 4, seq: 4, document: { a: 1, b: 2, d: 4, e: 5 } });
    // The ledger moves seq without a version: the preview's seq follows it.
    await server.data(AcquireLockDocument, { contextId: id, name: "w", holder: "h", leaseMs: 60_000 });
    expect((await server.data(MergeContextDryDocument, { id, merge: { e: 5 }, dryRun: true })).mergeContext).toMatchObject({ version: 4, seq: 5 });
  });

  test("every refusal of the write: VERSION_CONFLICT, STALE_FENCE, INVALID_PATCH, VALIDATION_FAILED, NOT_FOUND", async () => {
    const id = await create();
    await server.refused("VERSION_CONFLICT", () => server.request(MergeContextDryDocument, { id, merge: { c: 1 }, expectedVersion: 1, dryRun: true }));
    await server.data(AcquireLockDocument, { contextId: id, name: "w", holder: "h", leaseMs: 60_000 });
    await server.refused("STALE_FENCE", () =>
      server.request(PatchContextDryDocument, { id, patch: [{ op: "add", path: "/c", value: 1 }], fence: { lock: "w", token: 7 }, dryRun: true }),
    );
    const fenced = await unchangedBy(async () =>
      (await server.data(PatchContextDryDocument, { id, patch: [{ op: "add", path: "/c", value: 1 }], fence: { lock: "w", token: 1 }, dryRun: true })).patchContext,
    );
    expect(fenced.version).toBe(3);
    await server.refused("INVALID_PATCH", () => server.request(PatchContextDryDocument, { id, patch: [{ op: "remove", path: "/nope" }], dryRun: true }));
    await server.refused("VALIDATION_FAILED", () => server.request(MergeContextDryDocument, { id, merge: { resources: 1 }, dryRun: true }));
    await server.refused("NOT_FOUND", () => server.request(RollbackContextDryDocument, { id, toVersion: 9, dryRun: true }));
    await server.refused("NOT_FOUND", () => server.request(MergeContextDryDocument, { id: "no-such", merge: {}, dryRun: true }));
  });
});

describe("VALIDATION_FAILED lists every problem", () => {
  test("of a document: each rule it breaks, path and message of the first on the error", async () => {
    const err = await server.refused("VALIDATION_FAILED", () =>
      server.request(CreateContextDocument, {
        id: freshId("probs"),
        document: {
          resources: { limits: { credits: -1, "bad kind": 5, tokens: 1.5 } },
          policy: { allocation: { maxShare: 2, maxDepth: 0, profiles: { llm: { leaseMs: 0 }, "": "x" } } },
        },
      }),
    );
    const problems = err.extensions?.problems as { path: string; message: string }[];
    expect(problems.map((p) => p.path)).toEqual([
      "/resources/limits/credits",
      "/resources/limits/bad kind",
      "/resources/limits/tokens",
      "/policy/allocation/maxShare",
      "/policy/allocation/maxDepth",
      "/policy/allocation/profiles/llm/request",
      "/policy/allocation/profiles/llm/leaseMs",
      "/policy/allocation/profiles/",
      "/policy/allocation/profiles/",
    ]);
    expect(err.extensions?.path).toBe(problems[0]!.path);
    expect(err.message).toBe(problems[0]!.message);
  });

  test("of arguments, together with the document's", async () => {
    const err = await server.refused("VALIDATION_FAILED", () =>
      server.request(CreateContextDocument, { id: "no spaces allowed", document: { policy: 1 }, opId: "x".repeat(201) }),
    );
    expect((err.extensions?.problems as { path: string }[]).map((p) => p.path)).toEqual(["opId", "id", "/policy"]);
    const id = await create({ resources: { limits: { credits: 10 } } });
    const alloc = await server.refused("VALIDATION_FAILED", () =>
      server.request(AllocateDocument, { contextId: id, request: [{ kind: "bad kind", amount: -1 }], mode: "EXACT", leaseMs: 0, holder: "" }),
    );
    expect((alloc.extensions?.problems as { path: string }[]).map((p) => p.path)).toEqual(["leaseMs", "holder", "request", "request"]);
  });

  test("a single problem, from an argument check or a Lua reply, is listed as one", async () => {
    const id = await create({ resources: { limits: { credits: 10 } } });
    const lua = await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, profile: "none", mode: "EXACT" }));
    expect(lua.extensions).toMatchObject({ path: "profile", problems: [{ path: "profile", message: lua.message }] });
    const arg = await server.refused("VALIDATION_FAILED", () => server.request(MergeContextDryDocument, { id, merge: {}, opId: "" }));
    expect(arg.extensions).toMatchObject({ path: "opId", problems: [{ path: "opId", message: arg.message }] });
  });

  test("are at most 100", async () => {
    const limits = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`k${i}`, -1]));
    const err = await server.refused("VALIDATION_FAILED", () => server.request(CreateContextDocument, { id: freshId("many"), document: { resources: { limits } } }));
    expect(err.extensions?.problems).toHaveLength(100);
  });
});
