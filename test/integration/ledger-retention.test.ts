// Proves that ended allocations are pruned once SWARM_ENDED_ALLOCATION_RETENTION_MS has passed since they ended, and only then: exactly the ones due go (hash, index entries, number, children set), live ones and ones ended later stay, their feed entries stay, each upkeep script handles at most STEP allocations, a child whose parent was pruned shows parent null with its parentId, and the sweeper drives it all from the lease index.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { parse } from "graphql";
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import { connectRedis, type RedisClient } from "../../src/redis/clients.js";
import type { Keys } from "../../src/redis/keys.js";
import { deploymentKeys, redisTarget } from "../../src/server/app.js";
import { scriptsOf } from "../../src/redis/scripts.js";
import { LedgerStore, type UpkeepStep } from "../../src/store/ledger.js";
import { ledgerViolations } from "../../support/ledger-invariant.js";
import { startTestServer, useTestServer } from "../helpers/app.js";
import { Backoff } from "../helpers/backoff.js";
import { redisTimePast } from "../helpers/redis-time.js";

/** The most allocations one script may end or prune: STEP in src/redis/lua/_2-ledger.lua. */
const STEP = 50;

const server = useTestServer({ leaseSweepMs: 0 });
type Data = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const doc = (query: string) => parse(query) as TypedDocumentNode<Data, Record<string, unknown>>;

let redis: RedisClient;
let keys: Keys;
beforeAll(async () => {
  redis = await connectRedis(redisTarget(server.config), "retention-test");
  keys = deploymentKeys(server.config);
});
afterAll(() => redis.disconnect());

let counter = 0;
const touched = new Set<string>();
afterEach(async () => {
  for (const id of touched) expect(await ledgerViolations(server.redis, server.config.keyPrefix, id)).toEqual([]);
  touched.clear();
});

/** A ledger store on the test server's keys whose upkeep prunes after `retentionMs`. */
const storeWith = (retentionMs: number) => new LedgerStore(redis, keys, { ...server.config, endedAllocationRetentionMs: retentionMs });

async function swarm(): Promise<string> {
  const id = `retention-${++counter}`;
  touched.add(id);
  await server.data(doc("mutation($id: ID!) { createContext(id: $id, document: { resources: { limits: { credits: 1000000 } } }) { id } }"), { id });
  return id;
}

async function allocate(contextId: string, parentId: string | null = null, leaseMs: number | null = null, amount = 10): Promise<{ id: string; expiresAt: string | null }> {
  const query = "mutation($c: ID!, $p: ID, $l: Int, $a: Float!) { allocate(contextId: $c, parentId: $p, leaseMs: $l, request: [{ kind: \"credits\", amount: $a }], mode: EXACT) { id expiresAt } }";
  return (await server.data(doc(query), { c: contextId, p: parentId, l: leaseMs, a: amount })).allocate;
}

async function release(id: string): Promise<number> {
  const { release } = await server.data(doc("mutation($id: ID!) { release(allocationId: $id) { endedAt } }"), { id });
  return Date.parse(release.endedAt);
}

async function read(id: string): Promise<Data | null> {
  return (await server.data(doc("query($id: ID!) { allocation(id: $id) { id status endedAt parentId parent { id } children { totalCount edges { node { id } } } } }"), { id })).allocation;
}

async function redisNow(): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** Upkeep steps until nothing is due; each step's reply. */
async function upkeep(store: LedgerStore, contextId: string): Promise<UpkeepStep[]> {
  const steps: UpkeepStep[] = [];
  do {
    expect(steps.length, "upkeep steps before nothing is due").toBeLessThan(20);
    steps.push(await store.upkeepStep(contextId));
  } while (steps.at(-1)!.more);
  return steps;
}

const numberOf = (id: string) => id.split("#")[1]!;

test("prunes exactly the ended allocations whose retention ran out: nothing live, nothing ended later; their feed entries stay", async () => {
  const id = await swarm();
  const live = await allocate(id);
  const liveParent = await allocate(id);
  const x = await allocate(id);
  const y = await allocate(id, x.id);
  const c1 = await allocate(id, liveParent.id);
  const e = await allocate(id, null, 1);
  await release(x.id); // y with it
  await release(c1.id);
  await redisTimePast(redis, e.expiresAt!);
  expect((await upkeep(storeWith(1e12), id)).reduce((sum, s) => sum + s.pruned, 0)).toBe(0); // ends e, prunes nothing
  const old = await Promise.all([x, y, c1, e].map((a) => read(a.id)));
  expect(old.map((a) => a!.status)).toEqual(["RELEASED", "RELEASED", "RELEASED", "EXPIRED"]);
  const oldEnd = Math.max(...old.map((a) => Date.parse(a!.endedAt)));

  // A gap, then allocations that end later.
  const GAP = 500;
  await redisTimePast(redis, new Date(oldEnd + GAP).toISOString());
  const n = await allocate(id);
  const n2 = await allocate(id, liveParent.id);
  const newEnd = Math.min(await release(n.id), await release(n2.id));
  // A retention that puts the cutoff (now - retention, in the script) after the old ends and,
  // as long as the upkeep runs within GAP of tBefore, at or before the new ones.
  const tBefore = await redisNow();
  const retention = tBefore - oldEnd - 1;
  const steps = await upkeep(storeWith(retention), id);
  const tAfter = await redisNow();
  expect(tAfter - tBefore, "the upkeep ran within the gap, so its cutoff fell between the two groups").toBeLessThan(newEnd - oldEnd - 1);

  expect(steps.reduce((sum, s) => sum + s.pruned, 0)).toBe(4);
  expect(steps.at(-1)!.nextDue).toBe(newEnd + retention);
  for (const a of [x, y, c1, e]) expect(await read(a.id), a.id).toBeNull();
  expect((await Promise.all([live, liveParent, n, n2].map((a) => read(a.id)))).map((a) => a?.status)).toEqual(["ACTIVE", "ACTIVE", "RELEASED", "RELEASED"]);
  const parentNow = (await read(liveParent.id))!;
  expect([parentNow.children.totalCount, parentNow.children.edges.map((edge: Data) => edge.node.id)]).toEqual([1, [n2.id]]);
  const { context } = await server.data(doc("query($id: ID!) { context(id: $id) { allocations { totalCount } activeAllocations history(limit: 100) { kind allocation { id } } } }"), { id });
  expect(context.allocations.totalCount).toBe(4);
  expect(context.activeAllocations).toBe(2);
  // Their feed entries stay (the feed has its own retention).
  const ended = context.history.filter((h: Data) => h.kind === "RELEASED" || h.kind === "EXPIRED").map((h: Data) => h.allocation.id);
  expect(ended).toEqual(expect.arrayContaining([x.id, y.id, c1.id, e.id]));
  // Nothing of theirs is left in Redis.
  const k = keys.context(id);
  for (const a of [x, y, c1, e]) {
    expect(await redis.exists(k.alloc(numberOf(a.id)))).toBe(0);
    expect(await redis.zscore(k.allocs, numberOf(a.id))).toBeNull();
    expect(await redis.zscore(k.ended, numberOf(a.id))).toBeNull();
    expect(await redis.zscore(k.allocationIndex({}), numberOf(a.id))).toBeNull();
  }
  expect(await redis.exists(k.childIndex(numberOf(x.id)))).toBe(0);
});

test("each upkeep script ends and prunes at most STEP allocations in all; the steps go on until nothing is due", async () => {
  const id = await swarm();
  const parent = await allocate(id, null, null, 10_000);
  await Promise.all(Array.from({ length: 119 }, () => allocate(id, parent.id)));
  const end = await release(parent.id); // 120 ended, in three release steps
  // A lease long enough to take its 30 children first.
  const expiring = await allocate(id, null, 1_000, 10_000);
  await Promise.all(Array.from({ length: 30 }, () => allocate(id, expiring.id)));
  await redisTimePast(redis, new Date(Math.max(end, Date.parse(expiring.expiresAt!))).toISOString());
  const steps = await upkeep(storeWith(0), id);
  for (const s of steps) expect(s.ended + s.pruned, JSON.stringify(s)).toBeLessThanOrEqual(STEP);
  // The first step ends the overdue subtree (31) and prunes with the room left.
  expect(steps[0]).toMatchObject({ ended: 31, pruned: STEP - 31, more: true });
  expect(steps.reduce((sum, s) => sum + s.ended, 0)).toBe(31);
  const pruned = steps.reduce((sum, s) => sum + s.pruned, 0);
  // All 120 released ones; the 31 expired in this pass, in a later millisecond, may be too.
  expect(pruned).toBeGreaterThanOrEqual(120);
  expect(pruned).toBeLessThanOrEqual(151);
  expect(await redis.zcard(keys.context(id).allocs)).toBe(151 - pruned);
  expect(steps.length).toBeGreaterThanOrEqual(3);
});

test("a child whose parent was pruned first shows parent null and keeps its parentId", async () => {
  const id = await swarm();
  const parent = await allocate(id);
  const child = await allocate(id, parent.id);
  const end = await release(parent.id);
  await redisTimePast(redis, new Date(end).toISOString());
  // Retention cut between the two (as a step boundary can, the parent ending after or with its
  // children): the child's turn is put off.
  const k = keys.context(id);
  await redis.zadd(k.ended, "XX", end + 3_600_000, numberOf(child.id));
  expect((await upkeep(storeWith(0), id)).reduce((sum, s) => sum + s.pruned, 0)).toBe(1);
  expect(await read(parent.id)).toBeNull();
  expect(await read(child.id)).toMatchObject({ status: "RELEASED", parentId: parent.id, parent: null });
  await redis.zadd(k.ended, "XX", end, numberOf(child.id));
  expect((await upkeep(storeWith(0), id)).reduce((sum, s) => sum + s.pruned, 0)).toBe(1);
  expect(await read(child.id)).toBeNull();
});

test("the sweeper prunes what a release ended, filed in the lease index under when its retention runs out", async () => {
  const swept = await startTestServer({ leaseSweepMs: 50, endedAllocationRetentionMs: 300 });
  try {
    const id = "swept";
    await swept.data(doc("mutation($id: ID!) { createContext(id: $id, document: { resources: { limits: { credits: 100 } } }) { id } }"), { id });
    const run = async (query: string, variables: Record<string, unknown>) => swept.data(doc(query), variables);
    const a = (await run("mutation($c: ID!) { allocate(contextId: $c, request: [{ kind: \"credits\", amount: 10 }], mode: EXACT) { id } }", { c: id })).allocate;
    const ended = Date.parse((await run("mutation($id: ID!) { release(allocationId: $id) { endedAt } }", { id: a.id })).release.endedAt);
    const leaseIndex = deploymentKeys(swept.config).indexOf(id).due;
    const filed = await server.redis.zscore(leaseIndex, id);
    // Filed at once (or already swept and gone, if the sweeper was that quick).
    if (filed !== null) expect(Number(filed)).toBe(ended + 300);
    // Pruned by the sweeper; then, nothing else being due, the context leaves the lease index.
    const backoff = new Backoff(5, 100);
    const done = async () => (await run("query($id: ID!) { allocation(id: $id) { id } }", { id: a.id })).allocation === null && (await server.redis.zscore(leaseIndex, id)) === null;
    for (let tries = 0; !(await done()); tries++) {
      expect(tries, "pruned by the sweeper").toBeLessThan(300);
      await backoff.wait();
    }
    expect(await ledgerViolations(server.redis, swept.config.keyPrefix, id)).toEqual([]);
  } finally {
    await swept.close();
  }
});

test("a sweeper claims what it works on: another passes it by, a release filed meanwhile stays filed, and a claim that runs out is due again", async () => {
  const id = await swarm();
  const a = await allocate(id);
  const scripts = scriptsOf(redis);
  const store = storeWith(60_000);
  const ix = keys.indexOf(id);
  await store.sweep(); // what earlier tests left due
  const now = await redisNow();
  // Due now, and claimed by a sweeper that is working on it.
  await redis.zadd(ix.due, now - 1, id);
  expect(await scripts.takeDue(ix.due, ix.claimed, now, now + 60_000, 10)).toEqual([id]);
  expect(await store.sweep(), "another sweeper passes a claimed context by").toBe(0);
  // A release lands while the claim is held: the server files the context under its prune time.
  const ended = await release(a.id);
  const filed = ended + server.config.endedAllocationRetentionMs;
  expect(Number(await redis.zscore(ix.due, id))).toBe(filed);
  // The claiming sweeper found nothing due before the release: that does not unfile it.
  await scripts.settleDue(ix.due, ix.claimed, id, "");
  expect(Number(await redis.zscore(ix.due, id))).toBe(filed);
  expect(await redis.zscore(ix.claimed, id)).toBeNull();

  // A claim whose sweeper stopped runs out: the context is due again from then.
  await redis.zadd(ix.due, now - 1, id);
  expect(await scripts.takeDue(ix.due, ix.claimed, now, now + 1, 10)).toEqual([id]);
  expect(await redis.zscore(ix.due, id)).toBeNull();
  expect(await scripts.takeDue(ix.due, ix.claimed, now + 1, now + 60_000, 10)).toEqual([id]);
  expect(Number(await redis.zscore(ix.claimed, id))).toBe(now + 60_000);
  await scripts.settleDue(ix.due, ix.claimed, id, filed);
  expect(Number(await redis.zscore(ix.due, id))).toBe(filed);
});
