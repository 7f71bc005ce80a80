// Proves that deleteContext runs in bounded scripts (counted in Redis's MONITOR) and ends the ledger at once, that the sweeper or a create of the id finishes a purge whose server stopped, that a deleted context's feed, counters and index entries are pruned after the retention (not when the id was created again) with a resync for a cursor into the pruned feed, and that an id created after the prune starts above the counter floor so that old cursors, allocation ids and fencing tokens cannot act on it.
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { connectRedis } from "../../src/redis/clients.js";
import { deploymentKeys } from "../../src/server/app.js";
import { scriptsOf } from "../../src/redis/scripts.js";
import { Deletions } from "../../src/store/deletions.js";
import { LedgerStore } from "../../src/store/ledger.js";
import type { Allocation } from "../../src/model/allocation.js";
import {
  AcquireLockDocument,
  AllocateDocument,
  ContextChangesDocument,
  CreateContextDocument,
  DeleteContextDocument,
  FencedPatchDocument,
  GetAllocationDocument,
  GetLedgerDocument,
  MergeContextDocument,
  RenewLockDocument,
  ReportUsageDocument,
  type ContextChangesSubscription,
} from "../gql/graphql.js";
import { useRedisServer, useTestServer, type ServerFixture } from "../helpers/app.js";
import { watchCommands } from "../helpers/monitor.js";
import { Backoff } from "../helpers/backoff.js";
import { subscribe, type FeedClient } from "../helpers/feed-client.js";

/** The most allocations or locks one purge step removes: STEP in src/redis/lua/_2-ledger.lua. */
const STEP = 50;
/** Commands one script may send, however large the swarm. */
const COMMANDS_PER_SCRIPT = 3 * STEP;

// A Redis of its own: MONITOR must see this file's commands only.
const redisServer = useRedisServer();
/** Retention long enough that nothing is pruned during a test; no sweeper, so that a purge left unfinished stays so until a test runs one. */
const server = useTestServer(() => ({ redisUrl: redisServer().url, leaseSweepMs: 0 }));
/** The shortest retention, and a busy sweeper: prunes happen within a test. Each a key prefix of its own, so a counter floor of its own. */
const short = useTestServer(() => ({ redisUrl: redisServer().url, leaseSweepMs: 20, deletedContextRetentionMs: 1_000 }));
const fresh = useTestServer(() => ({ redisUrl: redisServer().url, leaseSweepMs: 20, deletedContextRetentionMs: 1_000 }));

let client: Redis;
beforeAll(async () => {
  client = await connectRedis({ url: redisServer().url }, "deletion-test");
});
afterAll(() => client.disconnect());

const credits = (amount: number) => [{ kind: "credits", amount }];
const actor = { actor: "test" };
const base = (on: ServerFixture, id: string) => deploymentKeys(on.config).contextBase(id);

/** The keys under a context's base (without the base), resend records left out: they expire on their own. */
async function keysOf(on: ServerFixture, id: string): Promise<string[]> {
  const found = await on.redis.keys(`${base(on, id)}:*`);
  return found.map((k) => k.slice(base(on, id).length + 1)).filter((k) => !k.startsWith("resend:")).sort();
}

/**
 * A swarm of `allocations` allocations (half of them children) and `locks` locks, built through
 * the store, many calls at once. Returns the seq of its CREATED entry (the counter floor plus one)
 * and its allocations.
 */
async function bigSwarm(on: ServerFixture, id: string, allocations: number, locks: number): Promise<{ created: number; allocations: Allocation[] }> {
  const ledger = new LedgerStore(client, deploymentKeys(on.config), on.config);
  const { createContext } = await on.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 1_000_000 } } } });
  const parents = await Promise.all(Array.from({ length: allocations / 2 }, () => ledger.allocate(id, { request: credits(10), mode: "EXACT", leaseMs: 600_000 }, actor)));
  const children = await Promise.all(parents.map((p) => ledger.allocate(id, { parentId: p.id, request: credits(1), mode: "EXACT" }, actor)));
  await Promise.all(Array.from({ length: locks }, (_, i) => ledger.acquireLock(id, `lock-${i}`, "agent", 600_000, actor)));
  return { created: createContext.seq, allocations: [...parents, ...children] };
}

/** Runs `run` while MONITOR watches Redis; returns how many commands each script sent meanwhile. */
async function commandsPerScript(run: () => Promise<unknown>): Promise<number[]> {
  const scripts: number[] = [];
  const watch = await watchCommands(server.config.redisUrl, (args, source) => {
    const command = args[0]!.toLowerCase();
    if (source === "lua") scripts[scripts.length - 1]!++;
    else if (command === "evalsha" || command === "eval") scripts.push(0);
  });
  try {
    await run();
    await watch.settle();
    return scripts;
  } finally {
    watch.stop();
  }
}

/** Polls (with backoff) until `check` holds. */
async function until(check: () => Promise<boolean>): Promise<void> {
  const backoff = new Backoff(5, 100);
  while (!(await check())) await backoff.wait();
}

/** Deletes like the delete script of a server that stopped right after it: the ledger's keys are left, filed for the sweeper as that server did. */
async function deleteAndStop(on: ServerFixture, id: string): Promise<void> {
  const keys = deploymentKeys(on.config);
  const k = keys.context(id);
  const reply = await scriptsOf(client).deleteContext(
    k.meta, k.seq, k.snapshots, k.feed, keys.resend(id, "stopped"), k.limits, k.policy,
    "", "", "test", "", new Date().toISOString(), on.config.feedRetention, 60, keys.changesChannel, id, keys.contextBase(id),
  );
  expect(JSON.parse(reply)).toMatchObject({ ok: true });
  await client.zadd(keys.indexOf(id).deleted, 0, id);
}

function watch(on: ServerFixture, id: string, seq: number): FeedClient<ContextChangesSubscription> {
  return subscribe("ws", on.url, ContextChangesDocument, { contextIds: [id], after: [{ contextId: id, seq }] });
}
const batches = (feed: FeedClient<ContextChangesSubscription>) => feed.values.map((v) => v.contextChanges);

test("deleteContext of a swarm of 300 allocations and 120 locks runs in bounded scripts and ends the ledger at once", async () => {
  const id = "big";
  const { allocations } = await bigSwarm(server, id, 300, 120);
  const someAllocation = allocations[0]!;
  const scripts = await commandsPerScript(() => server.data(DeleteContextDocument, { id }));
  expect(scripts.length).toBeGreaterThanOrEqual(300 / STEP + 120 / STEP);
  expect(Math.max(...scripts)).toBeLessThanOrEqual(COMMANDS_PER_SCRIPT);
  // What stays for the retention: the feed, the counters, the lock names that have one, and the tombstone.
  const left = await keysOf(server, id);
  expect(left.filter((k) => !k.startsWith("lockToken:"))).toEqual(["allocCount", "feed", "lockNames", "seq", "tomb"]);
  expect(left.filter((k) => k.startsWith("lockToken:"))).toHaveLength(120);
  expect((await server.data(GetAllocationDocument, { id: someAllocation.id })).allocation).toBeNull();
  await server.refused("NOT_FOUND", () => server.request(ReportUsageDocument, { allocationId: someAllocation.id, usage: credits(1) }));
});

test("a purge whose server stopped: the ledger answers NOT_FOUND meanwhile, and the sweeper finishes it", async () => {
  const id = "stopped-swept";
  const { allocations } = await bigSwarm(server, id, 120, 60);
  await deleteAndStop(server, id);
  expect((await keysOf(server, id)).filter((k) => k.startsWith("alloc:"))).toHaveLength(120);
  expect((await server.data(GetAllocationDocument, { id: allocations[0]!.id })).allocation).toBeNull();
  await server.refused("NOT_FOUND", () => server.request(AllocateDocument, { contextId: id, request: credits(1), mode: "EXACT" }));
  await server.refused("NOT_FOUND", () => server.request(AcquireLockDocument, { contextId: id, name: "lock-1", holder: "x", leaseMs: 1000 }));
  const keys = deploymentKeys(server.config);
  // One pass, as the sweeper's timer would run it (this server's sweeper is off).
  const deletions = new Deletions(client, keys, server.config);
  expect(await deletions.sweep()).toBe(1);
  const left = await keysOf(server, id);
  expect(left.filter((k) => !k.startsWith("lockToken:"))).toEqual(["allocCount", "feed", "lockNames", "seq", "tomb"]);
  const tomb = await server.redis.hgetall(`${base(server, id)}:tomb`);
  expect(tomb).toEqual({ seq: await server.redis.get(`${base(server, id)}:seq`), deletedAt: expect.any(String) });
  // Filed under when the floor is to be raised for it: half a retention after the deletion.
  expect(Number(await server.redis.zscore(keys.indexOf(id).deleted, id))).toBe(Number(tomb.deletedAt) + server.config.deletedContextRetentionMs / 2);
});

test("a create of an id whose purge is unfinished finishes it first: no allocation or lock of the deleted context shows in the new one", async () => {
  const id = "stopped-created";
  const first = await bigSwarm(server, id, 120, 60);
  await deleteAndStop(server, id);
  const created = (await server.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 5 } } } })).createContext;
  const { context } = await server.data(GetLedgerDocument, { id });
  expect(context!.allocations).toMatchObject({ totalCount: 0, edges: [] });
  expect(context!.locks).toEqual([]);
  expect(context!.budget.granted).toEqual([{ kind: "credits", amount: 0 }]);
  expect((await keysOf(server, id)).filter((k) => /^(alloc:|children:|lock:)/.test(k))).toEqual([]);
  // Created within the retention: the counters go on (after CREATED, 180 changes and DELETED).
  expect(created.seq).toBe(first.created + 182);
  const again = (await server.data(AllocateDocument, { contextId: id, request: credits(5), mode: "EXACT" })).allocate;
  expect(again.id).toBe(`${id}#${first.created - 1 + 121}`);
});

test("after the retention the feed, counters and index entries of a deleted context are pruned, and a cursor into the pruned feed gets a resync", async () => {
  const id = "pruned";
  await short.data(CreateContextDocument, { id, document: { n: 0, resources: { limits: { credits: 10 } } } });
  await short.data(MergeContextDocument, { id, merge: { n: 1 } });
  await short.data(AcquireLockDocument, { contextId: id, name: "w", holder: "a", leaseMs: 60_000 });
  await short.data(AllocateDocument, { contextId: id, request: credits(1), mode: "UP_TO", leaseMs: 60_000 });
  const { deleteContext } = await short.data(DeleteContextDocument, { id });
  const ix = deploymentKeys(short.config).indexOf(id);
  expect(await short.redis.zscore(ix.due, id)).not.toBeNull();
  await until(async () => (await short.redis.exists(`${base(short, id)}:seq`)) === 0);
  await until(async () => (await short.redis.zscore(ix.deleted, id)) === null);
  expect(await keysOf(short, id)).toEqual([]);
  expect(await short.redis.zscore(ix.feeds, id)).toBeNull();
  expect(await short.redis.zscore(ix.contexts, id)).toBeNull();
  expect(await short.redis.zscore(ix.due, id)).toBeNull();
  const feed = watch(short, id, deleteContext.seq - 1);
  await feed.until((c) => c.values.length > 0, "the resync");
  expect(batches(feed)[0]).toEqual({ changes: [], resync: [{ contextId: id, seq: 0, version: 0 }] });
  feed.close();
});

test("an id created again within the retention keeps its feed and counters: the sweeper drops it from the deleted index and prunes nothing", async () => {
  const id = "kept";
  await short.data(CreateContextDocument, { id, document: { n: 0 } });
  const { deleteContext } = await short.data(DeleteContextDocument, { id });
  const created = (await short.data(CreateContextDocument, { id, document: { n: 1 } })).createContext;
  expect(created.seq).toBe(deleteContext.seq + 1);
  const ix = deploymentKeys(short.config).indexOf(id);
  // The sweeper looks at it when its prune would have been due, and drops it from the deleted index.
  await until(async () => (await short.redis.zscore(ix.deleted, id)) === null);
  expect((await short.data(MergeContextDocument, { id, merge: { n: 2 } })).mergeContext.seq).toBe(created.seq + 1);
  expect(await short.redis.zscore(ix.feeds, id)).not.toBeNull();
});

test("an id created after the prune starts above the counter floor: an old cursor gets a resync, old allocation ids and fencing tokens do not act on it", async () => {
  const id = "reborn";
  await fresh.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 100 } }, n: 0 } });
  const old = (await fresh.data(AllocateDocument, { contextId: id, request: credits(10), mode: "EXACT" })).allocate;
  const oldLock = (await fresh.data(AcquireLockDocument, { contextId: id, name: "w", holder: "a", leaseMs: 60_000 })).acquireLock;
  await fresh.data(MergeContextDocument, { id, merge: { n: 1 } });
  const { deleteContext } = await fresh.data(DeleteContextDocument, { id });
  await until(async () => (await fresh.redis.exists(`${base(fresh, id)}:seq`)) === 0);
  // The only deletion under this prefix: the floor, raised for the prune, is its DELETED seq.
  const floor = deleteContext.seq;
  expect(Number(await fresh.redis.get(deploymentKeys(fresh.config).indexOf(id).counterFloor))).toBe(floor);

  const created = (await fresh.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 100 } }, n: 0 } })).createContext;
  expect(created.seq).toBe(floor + 1);
  const stale = watch(fresh, id, deleteContext.seq - 1);
  const exact = watch(fresh, id, floor);
  await stale.until((c) => c.values.length > 0, "the resync");
  expect(batches(stale)[0]).toEqual({ changes: [], resync: [{ contextId: id, seq: floor + 1, version: 1 }] });
  await exact.until((c) => c.values.length > 0, "the new feed");
  expect(batches(exact)[0]!.changes.map((c) => [c.seq, c.kind])).toEqual([[floor + 1, "CREATED"]]);
  stale.close();
  exact.close();

  expect((await fresh.data(GetAllocationDocument, { id: old.id })).allocation).toBeNull();
  await fresh.refused("NOT_FOUND", () => fresh.request(ReportUsageDocument, { allocationId: old.id, usage: credits(1) }));
  const now = (await fresh.data(AllocateDocument, { contextId: id, request: credits(10), mode: "EXACT" })).allocate;
  expect(Number(now.id.split("#")[1])).toBe(floor + 1);
  const lock = (await fresh.data(AcquireLockDocument, { contextId: id, name: "w", holder: "b", leaseMs: 60_000 })).acquireLock;
  expect(lock.token).toBe(floor + 1);
  expect(oldLock.token).toBeLessThanOrEqual(floor);
  await fresh.refused("STALE_FENCE", () => fresh.request(RenewLockDocument, { contextId: id, name: "w", token: oldLock.token, leaseMs: 1000 }));
  await fresh.refused("STALE_FENCE", () =>
    fresh.request(FencedPatchDocument, { id, patch: [{ op: "replace", path: "/n", value: 2 }], fence: { lock: "w", token: oldLock.token } }),
  );
});

test("a create whose floor was read longer than a quarter of the retention ago is answered pending and writes nothing", async () => {
  const id = "late-floor";
  const keys = deploymentKeys(server.config);
  const k = keys.context(id);
  const [seconds] = await client.time();
  const readAt = Number(seconds) * 1000 - server.config.deletedContextRetentionMs / 2;
  const args = ["", "", "test", "", new Date().toISOString(), 10, 60, keys.changesChannel, id, '[""]', "[]", "head", "", "", ""] as const;
  const reply = await scriptsOf(client).createContext(k.meta, k.seq, k.snapshots, k.feed, keys.op(id, "late"), k.limits, k.policy, ...args, keys.contextBase(id), 0, readAt, server.config.deletedContextRetentionMs / 4);
  expect(JSON.parse(reply)).toEqual({ pending: true });
  expect(await server.redis.keys(`${keys.contextBase(id)}:*`)).toEqual([]);
});
