// Proves that racing writers through two server instances on one Redis never lose an update: compare-and-set picks exactly one winner, unconditioned patches all land, and an opId is applied once however it is retried.
import { describe, expect, test } from "vitest";
import {
  CreateContextDocument,
  DeleteContextDocument,
  GetContextDocument,
  GetHistoryDocument,
  MergeContextDocument,
  PatchContextDocument,
  PatchContextHeadDocument,
  RollbackContextDocument,
} from "../gql/graphql.js";
import { errorCode, useTestServer, type ServerHandle } from "../helpers/app.js";

const a = useTestServer();
// Same key prefix: two instances of one deployment.
const b = useTestServer(() => ({ keyPrefix: a.config.keyPrefix }));

describe("compare-and-set", () => {
  test("two writers with the same expectedVersion: exactly one wins, the other gets VERSION_CONFLICT", async () => {
    await a.data(CreateContextDocument, { id: "cas", document: { winner: null } });
    for (let version = 1; version <= 20; version++) {
      // Alternate which instance serves which writer, and sometimes put both on one instance.
      const [first, second] = version % 3 === 0 ? [a, a] : version % 2 === 0 ? [a, b] : [b, a];
      const results = await Promise.all(
        [first, second].map((server, i) =>
          server.request(PatchContextHeadDocument, {
            id: "cas",
            expectedVersion: version,
            patch: [{ op: "replace", path: "/winner", value: `${version}-${i}` }],
          }),
        ),
      );
      const wins = results.filter((r) => r.data?.patchContext);
      const conflicts = results.filter((r) => errorCode(r) === "VERSION_CONFLICT");
      expect(wins).toHaveLength(1);
      expect(conflicts).toHaveLength(1);
      expect(wins[0]!.data!.patchContext.version).toBe(version + 1);
      expect(conflicts[0]!.errors![0]!.extensions?.currentVersion).toBe(version + 1);
    }
    expect((await b.data(GetContextDocument, { id: "cas" })).context?.version).toBe(21);
  });
});

describe("no lost update", () => {
  test("16 concurrent clients x 50 patches without expectedVersion: all 800 applied, version 801", async () => {
    await a.data(CreateContextDocument, { id: "race", document: { clients: {} } });
    const clients = 16;
    const patches = 50;
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        const server = c % 2 === 0 ? a : b;
        await server.data(PatchContextHeadDocument, { id: "race", patch: [{ op: "add", path: `/clients/c${c}`, value: [] }] });
        for (let i = 1; i < patches; i++) {
          await server.data(PatchContextHeadDocument, { id: "race", patch: [{ op: "add", path: `/clients/c${c}/-`, value: i }] });
        }
      }),
    );
    const { context } = await a.data(GetContextDocument, { id: "race" });
    expect(context?.version).toBe(clients * patches + 1);
    const doc = context?.document as { clients: Record<string, number[]> };
    for (let c = 0; c < clients; c++) {
      expect(doc.clients[`c${c}`]).toEqual(Array.from({ length: patches - 1 }, (_, i) => i + 1));
    }
  });
});

describe("opId idempotency", () => {
  test("the same patch opId sent concurrently to both instances and again later is applied once; all get the first outcome", async () => {
    await a.data(CreateContextDocument, { id: "idem", document: { log: [] } });
    for (let round = 0; round < 10; round++) {
      const opId = `append-${round}`;
      const send = (server: ServerHandle) =>
        server.request(PatchContextDocument, { id: "idem", opId, patch: [{ op: "add", path: "/log/-", value: round }] });
      const concurrent = await Promise.all([send(a), send(b), send(a), send(b)]);
      const later = await send(b);
      const outcomes = [...concurrent, later].map((r) => {
        expect(r.errors).toBeUndefined();
        return { version: r.data!.patchContext.version, seq: r.data!.patchContext.seq };
      });
      expect(new Set(outcomes.map((o) => JSON.stringify(o))).size).toBe(1);
      expect(outcomes[0]!.version).toBe(round + 2);
    }
    const { context } = await a.data(GetContextDocument, { id: "idem" });
    expect(context?.document).toEqual({ log: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] });
    // A replay returns the document of the version it produced, even after later writes.
    const replay = await a.data(PatchContextDocument, { id: "idem", opId: "append-0", patch: [{ op: "add", path: "/log/-", value: 0 }] });
    expect(replay.patchContext).toMatchObject({ version: 2, document: { log: [0] } });
  });

  test("a replay whose patch no longer applies still returns the first outcome", async () => {
    await a.data(CreateContextDocument, { id: "idem-test", document: { state: "open" } });
    const patch = [
      { op: "test" as const, path: "/state", value: "open" },
      { op: "replace" as const, path: "/state", value: "closed" },
    ];
    const first = await a.data(PatchContextHeadDocument, { id: "idem-test", opId: "close", patch });
    // The test op would now fail; the opId must win over re-evaluation, on either instance.
    expect((await b.data(PatchContextHeadDocument, { id: "idem-test", opId: "close", patch })).patchContext).toEqual(first.patchContext);
    expect((await a.data(PatchContextHeadDocument, { id: "idem-test", opId: "close", patch })).patchContext).toEqual(first.patchContext);
  });

  test("create, merge, rollback and delete honour opId under concurrency", async () => {
    const created = await Promise.all([a, b, a].map((s) => s.request(CreateContextDocument, { id: "idem-all", document: { n: 0 }, opId: "c1" })));
    expect(created.map((r) => r.data?.createContext.version)).toEqual([1, 1, 1]);

    const merged = await Promise.all([a, b].map((s) => s.data(MergeContextDocument, { id: "idem-all", merge: { n: 1 }, opId: "m1" })));
    expect(merged.map((r) => r.mergeContext.version)).toEqual([2, 2]);

    const rolled = await Promise.all([b, a].map((s) => s.data(RollbackContextDocument, { id: "idem-all", toVersion: 1, opId: "r1" })));
    expect(rolled.map((r) => r.rollbackContext.version)).toEqual([3, 3]);

    const deleted = await Promise.all([a, b].map((s) => s.data(DeleteContextDocument, { id: "idem-all", opId: "d1" })));
    expect(deleted.map((r) => r.deleteContext)).toEqual([
      { id: "idem-all", version: 3, seq: 4 },
      { id: "idem-all", version: 3, seq: 4 },
    ]);
    const history = await a.data(CreateContextDocument, { id: "idem-all", document: {} });
    // One entry per applied change: CREATED, UPDATED, ROLLED_BACK, DELETED, then CREATED again.
    expect(history.createContext.seq).toBe(5);
  });
});

test("history of a raced context is gap-free, one entry per change", async () => {
  await a.data(CreateContextDocument, { id: "race-feed", document: {} });
  await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      (i % 2 ? a : b).data(MergeContextDocument, { id: "race-feed", merge: { [`k${i}`]: i } }),
    ),
  );
  const { context } = await a.data(GetHistoryDocument, { id: "race-feed", limit: 1000 });
  const entries = context!.history;
  expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
  expect(entries.map((e) => e.version)).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
  expect(new Set(entries.slice(1).map((e) => e.paths[0])).size).toBe(40);
});

describe("pipelined writes on one instance", () => {
  test("writes chained after one that does not land (an opId replay) are recomputed and all land", async () => {
    await a.data(CreateContextDocument, { id: "chain", document: { log: [] } });
    await a.data(PatchContextHeadDocument, { id: "chain", opId: "first", patch: [{ op: "add", path: "/log/-", value: "first" }] });
    const sends = [
      a.request(PatchContextHeadDocument, { id: "chain", opId: "first", patch: [{ op: "add", path: "/log/-", value: "first" }] }),
      ...Array.from({ length: 20 }, (_, i) =>
        a.request(PatchContextHeadDocument, { id: "chain", patch: [{ op: "add", path: "/log/-", value: i }] }),
      ),
    ];
    const results = await Promise.all(sends);
    expect(results.map((r) => r.errors)).toEqual(results.map(() => undefined));
    expect(results[0]!.data!.patchContext.version).toBe(2);
    const { context } = await a.data(GetContextDocument, { id: "chain" });
    expect(context?.version).toBe(22);
    const log = (context?.document as { log: unknown[] }).log;
    expect(log[0]).toBe("first");
    expect([...log.slice(1)].sort((x, y) => Number(x) - Number(y))).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  test("a context deleted and created again through another instance is never read from a stale cache", async () => {
    await a.data(CreateContextDocument, { id: "reborn", document: { life: 1 } });
    expect((await a.data(GetContextDocument, { id: "reborn" })).context?.document).toEqual({ life: 1 });
    await b.data(DeleteContextDocument, { id: "reborn" });
    await b.data(CreateContextDocument, { id: "reborn", document: { life: 2 } });
    expect((await a.data(GetContextDocument, { id: "reborn" })).context).toMatchObject({ version: 1, document: { life: 2 } });
    const patched = await a.data(PatchContextDocument, { id: "reborn", patch: [{ op: "add", path: "/x", value: true }] });
    expect(patched.patchContext.document).toEqual({ life: 2, x: true });
  });
});
