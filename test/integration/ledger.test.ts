// Proves the ledger operations of API.md against real Redis: EXACT and UP_TO grants, maxShare, maxDepth, profiles, usage, cascade release with roll-up, renew, lease expiry (a refusal writes nothing even with leases overdue), live limit changes and each error code, with the invariant checked after every test.
import { afterEach, describe, expect, test } from "vitest";
import {
  AcquireLockDocument,
  AllocateDocument,
  CreateContextDocument,
  DeleteContextDocument,
  GetAllocationDocument,
  GetHistoryDocument,
  GetLedgerDocument,
  MergeContextDocument,
  PatchContextDocument,
  ReleaseDocument,
  ReleaseLockDocument,
  RenewAllocationDocument,
  RenewLockDocument,
  ReportUsageDocument,
} from "../gql/graphql.js";
import { deploymentKeys } from "../../src/server/app.js";
import { startTestServer, useTestServer, type GraphQLResponse } from "../helpers/app.js";
import { ledgerViolations } from "../../support/ledger-invariant.js";
import { redisTimePast } from "../helpers/redis-time.js";
import { keysMatching } from "../helpers/redis-state.js";

// No sweeper: `refused` compares every key of the prefix, and background sweeps would change
// other tests' contexts meanwhile. The sweeper's own test starts a server with one.
const server = useTestServer({ leaseSweepMs: 0 });
let counter = 0;
const touched = new Set<string>();

afterEach(async () => {
  for (const id of touched) expect(await ledgerViolations(server.redis, server.config.keyPrefix, id, id.startsWith("lowered"))).toEqual([]);
  touched.clear();
});

async function swarm(document: unknown, label = "ledger"): Promise<string> {
  const id = `${label}-${++counter}`;
  touched.add(id);
  await server.data(CreateContextDocument, { id, document });
  return id;
}

const amounts = (o: Record<string, number>) => Object.entries(o).map(([kind, amount]) => ({ kind, amount }));
const asMap = (list: readonly { kind: string; amount: number }[]) => Object.fromEntries(list.map((a) => [a.kind, a.amount]));

describe("allocate", () => {
  test("EXACT from the budget, then from an allocation; budget and reserved follow", async () => {
    const id = await swarm({ resources: { limits: { credits: 1000, tokens: 50 } } });
    const run = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 600, tokens: 10 }), mode: "EXACT", holder: "planner", purpose: "run 1" })).allocate;
    expect(run).toMatchObject({ id: `${id}#1`, tier: 2, parentId: null, path: [], status: "ACTIVE", holder: "planner", purpose: "run 1" });
    expect(asMap(run.granted)).toEqual({ credits: 600, tokens: 10 });
    const step = (await server.data(AllocateDocument, { contextId: id, parentId: run.id, request: amounts({ credits: 100 }), mode: "EXACT" })).allocate;
    expect(step).toMatchObject({ tier: 3, parentId: run.id, path: [run.id] });
    const { context } = await server.data(GetLedgerDocument, { id });
    expect(asMap(context!.budget.granted)).toEqual({ credits: 600, tokens: 10 });
    expect(asMap(context!.budget.available)).toEqual({ credits: 400, tokens: 40 });
    const parent = (await server.data(GetAllocationDocument, { id: run.id })).allocation!;
    expect(asMap(parent.reserved)).toEqual({ credits: 100, tokens: 0 });
    expect(asMap(parent.available)).toEqual({ credits: 500, tokens: 10 });
    expect(parent.children.edges.map(({ node: c }) => c.id)).toEqual([step.id]);
  });

  test("EXACT refuses what it cannot cover with INSUFFICIENT_RESOURCES and the available amounts; UP_TO grants what it can", async () => {
    const id = await swarm({ resources: { limits: { credits: 100, tokens: 5 } } });
    const err = await server.refused("INSUFFICIENT_RESOURCES", () =>
      server.request(AllocateDocument, { contextId: id, request: amounts({ credits: 50, tokens: 10 }), mode: "EXACT" }),
    );
    expect(err.extensions?.available).toEqual(amounts({ credits: 100, tokens: 5 }));
    expect(err.extensions?.requested).toEqual(amounts({ credits: 50, tokens: 10 }));
    const upTo = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 50, tokens: 10 }), mode: "UP_TO" })).allocate;
    expect(asMap(upTo.granted)).toEqual({ credits: 50, tokens: 5 });
    expect(asMap(upTo.requested)).toEqual({ credits: 50, tokens: 10 });
    await server.refused("INSUFFICIENT_RESOURCES", () =>
      server.request(AllocateDocument, { contextId: id, request: amounts({ tokens: 1 }), mode: "UP_TO" }),
    );
    // A kind the budget does not have gets nothing.
    await server.refused("INSUFFICIENT_RESOURCES", () => server.request(AllocateDocument, { contextId: id, request: amounts({ gpu: 1 }), mode: "EXACT" }));
  });

  test("maxShare caps each grant at a fraction of the parent's available amount, read live", async () => {
    const id = await swarm({ resources: { limits: { credits: 1000 } }, policy: { allocation: { maxShare: 0.25 } } });
    const a = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 1000 }), mode: "UP_TO" })).allocate;
    expect(asMap(a.granted)).toEqual({ credits: 250 });
    const b = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 1000 }), mode: "UP_TO" })).allocate;
    expect(asMap(b.granted)).toEqual({ credits: 187 }); // floor(750 * 0.25)
    await server.data(MergeContextDocument, { id, merge: { policy: { allocation: { maxShare: 1 } } } });
    const c = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 1000 }), mode: "UP_TO" })).allocate;
    expect(asMap(c.granted)).toEqual({ credits: 563 });
  });

  test("maxDepth limits tiers, LIMIT_EXCEEDED beyond it, and a change applies to the next allocation", async () => {
    const id = await swarm({ resources: { limits: { credits: 100 } }, policy: { allocation: { maxDepth: 3 } } });
    const t2 = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 50 }), mode: "EXACT" })).allocate;
    const t3 = (await server.data(AllocateDocument, { contextId: id, parentId: t2.id, request: amounts({ credits: 20 }), mode: "EXACT" })).allocate;
    const err = await server.refused("LIMIT_EXCEEDED", () =>
      server.request(AllocateDocument, { contextId: id, parentId: t3.id, request: amounts({ credits: 5 }), mode: "EXACT" }),
    );
    expect(err.extensions).toMatchObject({ limit: "maxDepth", max: 3 });
    await server.data(PatchContextDocument, { id, patch: [{ op: "replace", path: "/policy/allocation/maxDepth", value: 4 }] });
    const t4 = (await server.data(AllocateDocument, { contextId: id, parentId: t3.id, request: amounts({ credits: 5 }), mode: "EXACT" })).allocate;
    expect(t4.tier).toBe(4);
    expect(t4.path).toEqual([t2.id, t3.id]);
  });

  test("profiles give the amounts and lease; request kinds override them", async () => {
    const id = await swarm({
      resources: { limits: { credits: 10000, tokens: 100000 } },
      policy: { allocation: { profiles: { llm: { request: { credits: 500, tokens: 20000 }, leaseMs: 60000 } } } },
    });
    const a = (await server.data(AllocateDocument, { contextId: id, profile: "llm", mode: "EXACT" })).allocate;
    expect(asMap(a.granted)).toEqual({ credits: 500, tokens: 20000 });
    expect(Date.parse(a.expiresAt!) - Date.parse(a.createdAt)).toBe(60000);
    const b = (await server.data(AllocateDocument, { contextId: id, profile: "llm", request: amounts({ credits: 7 }), mode: "EXACT", leaseMs: 1000 })).allocate;
    expect(asMap(b.granted)).toEqual({ credits: 7, tokens: 20000 });
    expect(Date.parse(b.expiresAt!) - Date.parse(b.createdAt)).toBe(1000);
    await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, profile: "nope", mode: "EXACT" }));
    // A refusal tells what was asked for: the profile's amounts with the request's overrides.
    const short = await server.refused("INSUFFICIENT_RESOURCES", () =>
      server.request(AllocateDocument, { contextId: id, profile: "llm", request: amounts({ credits: 100000 }), mode: "EXACT" }),
    );
    expect(asMap(short.extensions?.requested as { kind: string; amount: number }[])).toEqual({ credits: 100000, tokens: 20000 });
  });

  test("NOT_FOUND, ALLOCATION_ENDED and VALIDATION_FAILED change nothing", async () => {
    await server.refused("NOT_FOUND", () => server.request(AllocateDocument, { contextId: "no-such-swarm", request: amounts({ credits: 1 }), mode: "EXACT" }));
    const id = await swarm({ resources: { limits: { credits: 100 } } });
    await server.refused("NOT_FOUND", () => server.request(AllocateDocument, { contextId: id, parentId: `${id}#99`, request: amounts({ credits: 1 }), mode: "EXACT" }));
    const a = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 10 }), mode: "EXACT" })).allocate;
    await server.data(ReleaseDocument, { allocationId: a.id });
    await server.refused("ALLOCATION_ENDED", () => server.request(AllocateDocument, { contextId: id, parentId: a.id, request: amounts({ credits: 1 }), mode: "EXACT" }));
    await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, mode: "EXACT" }));
    await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, request: amounts({ credits: -1 }), mode: "EXACT" }));
    await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, request: amounts({ "bad kind": 1 }), mode: "EXACT" }));
    await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, request: amounts({ credits: 1 }), mode: "EXACT", leaseMs: 0 }));
    await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, request: amounts({ credits: 1 }), mode: "EXACT", holder: "h".repeat(201) }));
    await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, request: amounts({ credits: 1, tokens: 1 }).concat(amounts({ credits: 2 })), mode: "EXACT" }));
  });

  test("a request whose amounts are all 0 asks for nothing: VALIDATION_FAILED in either mode, through a profile too", async () => {
    const id = await swarm({
      resources: { limits: { credits: 100, tokens: 10 } },
      policy: { allocation: { profiles: { idle: { request: { credits: 0 } }, api: { request: { credits: 20 } } } } },
    });
    for (const mode of ["EXACT", "UP_TO"] as const) {
      const err = await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, request: amounts({ credits: 0, tokens: 0 }), mode }));
      expect(err.extensions?.path).toBe("request");
    }
    const err = await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, profile: "idle", mode: "EXACT" }));
    expect(err.extensions?.path).toBe("profile");
    await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, profile: "api", request: amounts({ credits: 0 }), mode: "EXACT" }));
    // One zero among other amounts is a kind the caller wants listed, at 0.
    const a = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 5, tokens: 0 }), mode: "EXACT" })).allocate;
    expect(asMap(a.granted)).toEqual({ credits: 5, tokens: 0 });
  });

  test("EXACT refuses kinds its parent does not hold, zero amounts too, naming them (constructor and toString included)", async () => {
    const id = await swarm({ resources: { limits: { credits: 100 } } });
    const err = await server.refused("INSUFFICIENT_RESOURCES", () =>
      server.request(AllocateDocument, { contextId: id, request: amounts({ credits: 5, nonexistentkind: 0 }), mode: "EXACT" }),
    );
    expect(err.message).toContain("nonexistentkind");
    expect(err.extensions?.available).toEqual(amounts({ credits: 100, nonexistentkind: 0 }));
    const proto = await server.refused("INSUFFICIENT_RESOURCES", () =>
      server.request(AllocateDocument, { contextId: id, request: amounts({ credits: 5, constructor: 0, toString: 0 }), mode: "EXACT" }),
    );
    expect(proto.message).toMatch(/constructor.*toString/);
    const run = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 50 }), mode: "EXACT" })).allocate;
    const under = await server.refused("INSUFFICIENT_RESOURCES", () =>
      server.request(AllocateDocument, { contextId: id, parentId: run.id, request: amounts({ credits: 5, tokens: 0 }), mode: "EXACT" }),
    );
    expect(under.message).toContain("tokens");
    const { budget } = (await server.data(GetLedgerDocument, { id })).context!;
    expect(budget.limits).toEqual(amounts({ credits: 100 }));
  });

  test("UP_TO grants 0 of a kind its parent does not hold, and the kind never shows in the budget", async () => {
    const id = await swarm({ resources: { limits: { credits: 100 } } });
    const a = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 5, gpu: 3, constructor: 1 }), mode: "UP_TO" })).allocate;
    expect(asMap(a.requested)).toEqual({ credits: 5, gpu: 3, constructor: 1 });
    expect(asMap(a.granted)).toEqual({ credits: 5, gpu: 0, constructor: 0 });
    const budgetKinds = async () => {
      const { budget } = (await server.data(GetLedgerDocument, { id })).context!;
      return [budget.limits, budget.granted, budget.consumed, budget.available].map((list) => list.map((x) => x.kind));
    };
    expect(await budgetKinds()).toEqual([["credits"], ["credits"], ["credits"], ["credits"]]);
    await server.data(ReleaseDocument, { allocationId: a.id });
    expect(await budgetKinds()).toEqual([["credits"], ["credits"], ["credits"], ["credits"]]);
  });
});

describe("usage, release, renew", () => {
  test("reportUsage adds to consumed and refuses what would exceed the allocation (USAGE_EXCEEDED)", async () => {
    const id = await swarm({ resources: { limits: { credits: 100 } } });
    const a = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 50 }), mode: "EXACT" })).allocate;
    await server.data(AllocateDocument, { contextId: id, parentId: a.id, request: amounts({ credits: 20 }), mode: "EXACT" });
    const used = (await server.data(ReportUsageDocument, { allocationId: a.id, usage: amounts({ credits: 25 }) })).reportUsage;
    expect(asMap(used.consumed)).toEqual({ credits: 25 });
    expect(asMap(used.available)).toEqual({ credits: 5 });
    const err = await server.refused("USAGE_EXCEEDED", () => server.request(ReportUsageDocument, { allocationId: a.id, usage: amounts({ credits: 6 }) }));
    expect(err.extensions).toMatchObject({ kind: "credits", remaining: 5 });
    await server.refused("USAGE_EXCEEDED", () => server.request(ReportUsageDocument, { allocationId: a.id, usage: amounts({ tokens: 1 }) }));
    await server.refused("NOT_FOUND", () => server.request(ReportUsageDocument, { allocationId: `${id}#42`, usage: amounts({ credits: 1 }) }));
    await server.refused("NOT_FOUND", () => server.request(ReportUsageDocument, { allocationId: "not-an-id", usage: amounts({ credits: 1 }) }));
    await server.refused("VALIDATION_FAILED", () => server.request(ReportUsageDocument, { allocationId: a.id, usage: [] }));
    await server.refused("VALIDATION_FAILED", () => server.request(ReportUsageDocument, { allocationId: a.id, usage: amounts({ credits: 1.5 }) }));
  });

  test("release cascades to active descendants, charges consumption up the chain and returns the rest", async () => {
    const id = await swarm({ resources: { limits: { credits: 1000 } } });
    const run = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 500 }), mode: "EXACT" })).allocate;
    const step1 = (await server.data(AllocateDocument, { contextId: id, parentId: run.id, request: amounts({ credits: 100 }), mode: "EXACT" })).allocate;
    const step2 = (await server.data(AllocateDocument, { contextId: id, parentId: run.id, request: amounts({ credits: 100 }), mode: "EXACT" })).allocate;
    const sub = (await server.data(AllocateDocument, { contextId: id, parentId: step2.id, request: amounts({ credits: 40 }), mode: "EXACT" })).allocate;
    await server.data(ReportUsageDocument, { allocationId: sub.id, usage: amounts({ credits: 30 }) });
    await server.data(ReleaseDocument, { allocationId: step1.id, usage: amounts({ credits: 60 }) });
    await server.data(ReportUsageDocument, { allocationId: run.id, usage: amounts({ credits: 10 }) });

    const released = (await server.data(ReleaseDocument, { allocationId: run.id, usage: amounts({ credits: 5 }) })).release;
    expect(released.status).toBe("RELEASED");
    // run consumed: its own 10 + 5, step1's 60, step2's 0 + sub's 30
    expect(asMap(released.consumed)).toEqual({ credits: 105 });
    const { context } = await server.data(GetLedgerDocument, { id });
    expect(asMap(context!.budget.consumed)).toEqual({ credits: 105 });
    expect(asMap(context!.budget.granted)).toEqual({ credits: 0 });
    expect(asMap(context!.budget.available)).toEqual({ credits: 895 });
    expect(context!.allocations.edges.map(({ node: a }) => a.status)).toEqual(["RELEASED", "RELEASED", "RELEASED", "RELEASED"]);
    const { context: feed } = await server.data(GetHistoryDocument, { id });
    expect(feed!.history.slice(-3).map((e) => e.kind)).toEqual(["RELEASED", "RELEASED", "RELEASED"]);
    await server.refused("ALLOCATION_ENDED", () => server.request(ReleaseDocument, { allocationId: sub.id }));
    await server.refused("ALLOCATION_ENDED", () => server.request(ReportUsageDocument, { allocationId: step2.id, usage: amounts({ credits: 1 }) }));
  });

  test("final usage beyond what is left is USAGE_EXCEEDED and changes nothing", async () => {
    const id = await swarm({ resources: { limits: { credits: 100 } } });
    const a = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 50 }), mode: "EXACT" })).allocate;
    const child = (await server.data(AllocateDocument, { contextId: id, parentId: a.id, request: amounts({ credits: 30 }), mode: "EXACT" })).allocate;
    await server.data(ReportUsageDocument, { allocationId: child.id, usage: amounts({ credits: 30 }) });
    const err = await server.refused("USAGE_EXCEEDED", () => server.request(ReleaseDocument, { allocationId: a.id, usage: amounts({ credits: 21 }) }));
    expect(err.extensions).toMatchObject({ kind: "credits", remaining: 20 });
    expect((await server.data(ReleaseDocument, { allocationId: a.id, usage: amounts({ credits: 20 }) })).release.consumed).toEqual(amounts({ credits: 50 }));
  });

  test("a lease runs out: the next operation that needs its room ends it as EXPIRED (no sweeper); renew extends it", async () => {
    const id = await swarm({ resources: { limits: { credits: 100 } } });
    // Leases long enough for the three requests before the renewal on a busy machine (an accepted
    // operation after `short`'s lease ran out would end it early), short enough to wait out.
    const short = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 60 }), mode: "EXACT", leaseMs: 1_000 })).allocate;
    await server.data(ReportUsageDocument, { allocationId: short.id, usage: amounts({ credits: 10 }) });
    const kept = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 40 }), mode: "EXACT", leaseMs: 1_000 })).allocate;
    const renewed = (await server.data(RenewAllocationDocument, { allocationId: kept.id, leaseMs: 60_000 })).renewAllocation;
    expect(Date.parse(renewed.expiresAt!)).toBeGreaterThan(Date.parse(kept.expiresAt!));
    await redisTimePast(server.redis, short.expiresAt!);
    expect((await server.data(GetAllocationDocument, { id: short.id })).allocation!.status).toBe("ACTIVE");
    const next = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 50 }), mode: "EXACT" })).allocate;
    expect(asMap(next.granted)).toEqual({ credits: 50 });
    const ended = (await server.data(GetAllocationDocument, { id: short.id })).allocation!;
    expect(ended.status).toBe("EXPIRED");
    expect(asMap(ended.consumed)).toEqual({ credits: 10 });
    const { context } = await server.data(GetLedgerDocument, { id });
    expect(asMap(context!.budget.consumed)).toEqual({ credits: 10 });
    const { context: feed } = await server.data(GetHistoryDocument, { id });
    expect(feed!.history.slice(-2).map((e) => [e.kind, e.allocation?.id, e.actor])).toEqual([
      ["EXPIRED", short.id, "anonymous"],
      ["ALLOCATED", next.id, "anonymous"],
    ]);
    await server.refused("ALLOCATION_ENDED", () => server.request(RenewAllocationDocument, { allocationId: short.id, leaseMs: 1000 }));
  });

  test("with leases overdue, a refused operation of any kind writes nothing (no EXPIRED, no seq), judged as if they had expired; the next accepted one expires them first", async () => {
    /**
     * A budget of 100 credits with a (50) > a1 (10, 4 consumed) and b (30) > b1 (20, 5 consumed)
     * and lock w held, once a's and b1's leases of `leaseMs` have run out; null if the second
     * renewal came after the first lease ran out (and so expired a).
     */
    async function overdueTree(leaseMs: number) {
      const id = await swarm({ resources: { limits: { credits: 100 } } });
      const allocate = (credits: number, parentId?: string) =>
        server.data(AllocateDocument, { contextId: id, parentId, request: amounts({ credits }), mode: "EXACT" }).then((r) => r.allocate);
      const a = await allocate(50);
      const a1 = await allocate(10, a.id);
      await server.data(ReportUsageDocument, { allocationId: a1.id, usage: amounts({ credits: 4 }) });
      const b = await allocate(30);
      const b1 = await allocate(20, b.id);
      await server.data(ReportUsageDocument, { allocationId: b1.id, usage: amounts({ credits: 5 }) });
      await server.data(AcquireLockDocument, { contextId: id, name: "w", holder: "h1", leaseMs: 60_000 });
      await server.data(RenewAllocationDocument, { allocationId: a.id, leaseMs });
      const renewed = (await server.data(RenewAllocationDocument, { allocationId: b1.id, leaseMs })).renewAllocation;
      await redisTimePast(server.redis, renewed.expiresAt!);
      const { allocation } = await server.data(GetAllocationDocument, { id: a.id });
      return allocation!.status === "ACTIVE" ? { id, a, a1, b, b1 } : null;
    }
    let tree = null;
    // A busy machine may take longer than the lease between the two renewals: try a longer one.
    for (let leaseMs = 50; !tree; leaseMs *= 2) {
      expect(leaseMs).toBeLessThan(60_000);
      tree = await overdueTree(leaseMs);
    }
    const { id, a, a1, b, b1 } = tree;
    // As if a (with a1) and b1 had expired: the budget has 100 - 30 granted to b - 4 consumed = 66,
    // b has 30 - 5 consumed by b1 = 25 (before expiry: 20 and 10).
    const short = await server.refused("INSUFFICIENT_RESOURCES", () => server.request(AllocateDocument, { contextId: id, request: amounts({ credits: 67 }), mode: "EXACT" }));
    expect(short.extensions?.available).toEqual(amounts({ credits: 66 }));
    for (const parentId of [a.id, a1.id]) {
      const ended = await server.refused("ALLOCATION_ENDED", () => server.request(AllocateDocument, { contextId: id, parentId, request: amounts({ credits: 1 }), mode: "EXACT" }));
      expect(ended.extensions?.status).toBe("EXPIRED");
    }
    await server.refused("VALIDATION_FAILED", () => server.request(AllocateDocument, { contextId: id, profile: "nope", mode: "EXACT" }));
    const over = await server.refused("USAGE_EXCEEDED", () => server.request(ReportUsageDocument, { allocationId: b.id, usage: amounts({ credits: 26 }) }));
    expect(over.extensions).toMatchObject({ kind: "credits", remaining: 25 });
    await server.refused("ALLOCATION_ENDED", () => server.request(ReportUsageDocument, { allocationId: a1.id, usage: amounts({ credits: 1 }) }));
    await server.refused("NOT_FOUND", () => server.request(ReportUsageDocument, { allocationId: `${id}#99`, usage: amounts({ credits: 1 }) }));
    await server.refused("USAGE_EXCEEDED", () => server.request(ReleaseDocument, { allocationId: b.id, usage: amounts({ credits: 26 }) }));
    await server.refused("ALLOCATION_ENDED", () => server.request(ReleaseDocument, { allocationId: a.id }));
    await server.refused("ALLOCATION_ENDED", () => server.request(RenewAllocationDocument, { allocationId: a1.id, leaseMs: 1000 }));
    await server.refused("LOCK_HELD", () => server.request(AcquireLockDocument, { contextId: id, name: "w", holder: "h2", leaseMs: 1000 }));
    await server.refused("STALE_FENCE", () => server.request(RenewLockDocument, { contextId: id, name: "w", token: 2, leaseMs: 1000 }));
    await server.refused("STALE_FENCE", () => server.request(ReleaseLockDocument, { contextId: id, name: "w", token: 2 }));

    const { context: before } = await server.data(GetHistoryDocument, { id });
    const used = (await server.data(ReportUsageDocument, { allocationId: b.id, usage: amounts({ credits: 25 }) })).reportUsage;
    expect(asMap(used.consumed)).toEqual({ credits: 30 });
    const { context: after } = await server.data(GetHistoryDocument, { id });
    const lastSeq = before!.history.at(-1)!.seq;
    expect(after!.history.slice(before!.history.length).map((e) => [e.seq, e.kind, e.allocation?.id])).toEqual([
      [lastSeq + 1, "EXPIRED", a1.id],
      [lastSeq + 2, "EXPIRED", a.id],
      [lastSeq + 3, "EXPIRED", b1.id],
      [lastSeq + 4, "USAGE_REPORTED", b.id],
    ]);
    const rest = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 66 }), mode: "EXACT" })).allocate;
    expect(asMap(rest.granted)).toEqual({ credits: 66 });
  });
});

describe("live limits", () => {
  test("lowering limits below what is granted is allowed; new allocations wait until enough is released", async () => {
    const id = await swarm({ resources: { limits: { credits: 100 } } }, "lowered");
    const a = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 80 }), mode: "EXACT" })).allocate;
    await server.data(PatchContextDocument, { id, patch: [{ op: "replace", path: "/resources/limits/credits", value: 50 }] });
    const { context } = await server.data(GetLedgerDocument, { id });
    expect(asMap(context!.budget.available)).toEqual({ credits: 0 });
    await server.refused("INSUFFICIENT_RESOURCES", () => server.request(AllocateDocument, { contextId: id, request: amounts({ credits: 1 }), mode: "UP_TO" }));
    await server.data(ReleaseDocument, { allocationId: a.id, usage: amounts({ credits: 20 }) });
    const b = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 30 }), mode: "EXACT" })).allocate;
    expect(asMap(b.granted)).toEqual({ credits: 30 });
  });
});

test("every ledger and lock mutation honours opId: sent twice at once and once after, applied once with one outcome", async () => {
  const id = await swarm({ resources: { limits: { credits: 100 } } });
  /** Sends the same request twice concurrently, then once more: all three answers must be equal and successful. */
  async function thrice<T>(send: () => Promise<GraphQLResponse<T>>): Promise<T> {
    const [x, y] = await Promise.all([send(), send()]);
    const z = await send();
    expect(x.errors, JSON.stringify(x.errors)).toBeUndefined();
    expect([y, z]).toEqual([x, x]);
    return x.data!;
  }
  const a = (await thrice(() => server.request(AllocateDocument, { contextId: id, request: amounts({ credits: 10 }), mode: "EXACT", opId: "alloc-1" }))).allocate;
  expect(a.id).toBe(`${id}#1`);
  await thrice(() => server.request(ReportUsageDocument, { allocationId: a.id, usage: amounts({ credits: 4 }), opId: "use-1" }));
  await thrice(() => server.request(RenewAllocationDocument, { allocationId: a.id, leaseMs: 60_000, opId: "renew-1" }));
  const released = (await thrice(() => server.request(ReleaseDocument, { allocationId: a.id, usage: amounts({ credits: 1 }), opId: "release-1" }))).release;
  expect(asMap(released.consumed)).toEqual({ credits: 5 });
  const lock = (await thrice(() => server.request(AcquireLockDocument, { contextId: id, name: "w", holder: "h", leaseMs: 60_000, opId: "lock-1" }))).acquireLock;
  expect(lock.token).toBe(1);
  await thrice(() => server.request(RenewLockDocument, { contextId: id, name: "w", token: 1, leaseMs: 60_000, opId: "lock-renew-1" }));
  await thrice(() => server.request(ReleaseLockDocument, { contextId: id, name: "w", token: 1, opId: "lock-release-1" }));

  const { context } = await server.data(GetLedgerDocument, { id });
  expect(context!.allocations.edges).toHaveLength(1);
  expect(asMap(context!.budget.consumed)).toEqual({ credits: 5 });
  const { context: feed } = await server.data(GetHistoryDocument, { id });
  expect(feed!.history.map((e) => e.kind)).toEqual(["CREATED", "ALLOCATED", "USAGE_REPORTED", "RENEWED", "RELEASED", "LOCK_ACQUIRED", "LOCK_RELEASED"]);
  // The same opId with other arguments is a client bug, refused rather than answered with another operation's outcome.
  const reused = await server.request(ReportUsageDocument, { allocationId: a.id, usage: amounts({ credits: 2 }), opId: "use-1" });
  expect(reused.errors?.[0]?.extensions).toMatchObject({ code: "VALIDATION_FAILED", path: "opId" });
});

test("ledger changes reach the feed with the allocation as they left it", async () => {
  const id = await swarm({ resources: { limits: { credits: 100 } } });
  const a = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 30 }), mode: "EXACT" })).allocate;
  await server.data(ReportUsageDocument, { allocationId: a.id, usage: amounts({ credits: 5 }) });
  await server.data(RenewAllocationDocument, { allocationId: a.id, leaseMs: 10_000 });
  await server.data(ReleaseDocument, { allocationId: a.id });
  const { context } = await server.data(GetHistoryDocument, { id });
  expect(context!.history.map((e) => [e.seq, e.version, e.kind, e.allocation?.status, e.allocation && asMap(e.allocation.consumed)])).toEqual([
    [1, 1, "CREATED", undefined, null],
    [2, 1, "ALLOCATED", "ACTIVE", { credits: 0 }],
    [3, 1, "USAGE_REPORTED", "ACTIVE", { credits: 5 }],
    [4, 1, "RENEWED", "ACTIVE", { credits: 5 }],
    [5, 1, "RELEASED", "RELEASED", { credits: 5 }],
  ]);
  expect(context!.history.every((e) => e.actor === "anonymous" && e.lock === null)).toBe(true);
});

test("deleteContext ends the ledger; a context created again continues allocation numbers", async () => {
  const id = await swarm({ resources: { limits: { credits: 100 } } });
  const a = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 30 }), mode: "EXACT", leaseMs: 60_000 })).allocate;
  await server.data(AllocateDocument, { contextId: id, parentId: a.id, request: amounts({ credits: 10 }), mode: "EXACT" });
  await server.data(DeleteContextDocument, { id });
  const left = (await keysMatching(server.redis, `${server.config.keyPrefix}:{ctx:${id}}:*`)).map((k) => k.split("}:")[1]!).sort();
  // Records of the writes (for resends after a reconnect) stay until they expire on their own.
  const records = left.filter((k) => k.startsWith("resend:"));
  expect(records).toHaveLength(4);
  for (const k of records) {
    const ttl = await server.redis.ttl(`${server.config.keyPrefix}:{ctx:${id}}:${k}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(server.config.resendTtlSeconds);
  }
  // The feed, the counters and the tombstone that says so stay for the deleted-context retention.
  expect(left.filter((k) => !k.startsWith("resend:"))).toEqual(["allocCount", "feed", "seq", "tomb"]);
  await server.refused("NOT_FOUND", () => server.request(ReportUsageDocument, { allocationId: a.id, usage: amounts({ credits: 1 }) }));
  await server.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 5 } } } });
  const again = (await server.data(AllocateDocument, { contextId: id, request: amounts({ credits: 5 }), mode: "EXACT" })).allocate;
  expect(again.id).toBe(`${id}#3`);
});

test("the sweeper ends an expired allocation nobody touches, emitting EXPIRED", async () => {
  const swept = await startTestServer({ leaseSweepMs: 100 });
  try {
    const id = "swept";
    await swept.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 100 } } } });
    const a = (await swept.data(AllocateDocument, { contextId: id, request: amounts({ credits: 10 }), mode: "EXACT", leaseMs: 100 })).allocate;
    const child = (await swept.data(AllocateDocument, { contextId: id, parentId: a.id, request: amounts({ credits: 5 }), mode: "EXACT" })).allocate;
    const deadline = Date.now() + 10_000;
    let status = "ACTIVE";
    while (status === "ACTIVE" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      status = (await swept.data(GetAllocationDocument, { id: a.id })).allocation!.status;
    }
    expect(status).toBe("EXPIRED");
    expect((await swept.data(GetAllocationDocument, { id: child.id })).allocation!.status).toBe("EXPIRED");
    const { context } = await swept.data(GetHistoryDocument, { id });
    expect(context!.history.slice(-2).map((e) => [e.kind, e.allocation!.id, e.actor])).toEqual([
      ["EXPIRED", child.id, "lease-sweeper"],
      ["EXPIRED", a.id, "lease-sweeper"],
    ]);
    // Nothing else is due: the context stays filed only for when retention prunes the two.
    const endedAt = Date.parse((await swept.data(GetAllocationDocument, { id: a.id })).allocation!.endedAt!);
    expect(Number(await server.redis.zscore(deploymentKeys(swept.config).indexOf(id).due, id))).toBe(endedAt + swept.config.endedAllocationRetentionMs);
    expect(await ledgerViolations(server.redis, swept.config.keyPrefix, id)).toEqual([]);
  } finally {
    await swept.close();
  }
});
