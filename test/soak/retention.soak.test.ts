// Proves that churn leaves Redis's memory where it was once the retentions have passed: 10,000 create/delete cycles (each context with allocations, a lock and a document change) and, once ended allocations are pruned (SWARM_ENDED_ALLOCATION_RETENTION_MS), 200,000 allocate+release pairs bring used_memory back within 10 % of its level before, with the sweepers doing the pruning.
import type { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { loadConfig, type Config } from "../../src/config.js";
import { connectRedis } from "../../src/redis/clients.js";
import { Keys } from "../../src/redis/keys.js";
import { ContextStore } from "../../src/store/contexts.js";
import { PeriodicPass } from "../../src/store/periodic-pass.js";
import { LedgerStore } from "../../src/store/ledger.js";
import { Backoff } from "../helpers/backoff.js";
import { startRedisServer, type RedisServer } from "../../support/redis-server.js";

const CYCLES = Number(process.env.SOAK_CYCLES ?? 10_000);
const PAIRS = Number(process.env.SOAK_PAIRS ?? 200_000);
/** Operations in flight at once. */
const IN_FLIGHT = 200;
/** How far used_memory may end above where it started. */
const TOLERANCE = 0.1;

const actor = { actor: "soak" };
let redisServer: RedisServer;
let redis: Redis;
let config: Config;
let keys: Keys;
let contexts: ContextStore;
let ledger: LedgerStore;
const sweepers: PeriodicPass[] = [];

beforeAll(async () => {
  // A Redis of its own: its used_memory is this file's alone.
  redisServer = await startRedisServer();
  redis = await connectRedis({ url: redisServer.url }, "soak");
  // Short retentions everywhere, so that the soak waits seconds for them; a feed of 100 entries,
  // so that a context's feed is full (at its bound) early.
  config = {
    ...loadConfig([], {}),
    feedRetention: 100,
    resendTtlSeconds: 1,
    opIdTtlSeconds: 1,
    deletedContextRetentionMs: 1_000,
    endedAllocationRetentionMs: 1_000,
  };
  keys = new Keys("soak");
  contexts = new ContextStore(redis, keys, config);
  ledger = new LedgerStore(redis, keys, config);
  const fail = (err: unknown) => {
    throw err;
  };
  sweepers.push(new PeriodicPass(() => ledger.sweep(), 20, fail), new PeriodicPass(() => contexts.deletions.sweep(), 20, fail));
});
afterAll(async () => {
  for (const sweeper of sweepers) sweeper.stop();
  redis?.disconnect();
  await redisServer?.stop();
});

/** Runs `work(i)` for i in [0, n), IN_FLIGHT at a time. */
async function pool(n: number, work: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(IN_FLIGHT, n) }, async () => {
      while (next < n) await work(next++);
    }),
  );
}

async function info(section: string): Promise<Map<string, string>> {
  const text = await redis.info(section);
  return new Map(text.split("\r\n").filter((line) => line.includes(":")).map((line) => line.split(":", 2) as [string, string]));
}

/**
 * Waits until Redis holds no more keys than `keys` (records and pruned keys gone: Redis expires
 * keys on its own, the sweepers prune) and nothing waits to be freed, then returns used_memory.
 */
async function settledMemory(keys: number): Promise<number> {
  const backoff = new Backoff(10, 500);
  for (;;) {
    const [size, memory] = await Promise.all([redis.dbsize(), info("memory")]);
    if (size <= keys && memory.get("lazyfree_pending_objects") === "0") return Number(memory.get("used_memory"));
    await backoff.wait();
  }
}

/** One context's life: created, allocated from (with a child and a lease), locked, changed, deleted. */
async function cycle(i: number): Promise<void> {
  const id = `cycle-${i}`;
  await contexts.create(id, { resources: { limits: { credits: 100 } }, n: 0 }, actor);
  const a = await ledger.allocate(id, { request: [{ kind: "credits", amount: 10 }], mode: "EXACT", leaseMs: 60_000 }, actor);
  await ledger.allocate(id, { parentId: a.id, request: [{ kind: "credits", amount: 1 }], mode: "EXACT" }, actor);
  await ledger.acquireLock(id, "writer", "agent", 60_000, actor);
  await contexts.merge(id, { n: i }, actor);
  await contexts.delete(id, actor);
}

/** Measures used_memory before (after a warm-up that loads the scripts) and after `run`, once everything it left is due and pruned. */
async function churn(label: string, run: (n: number) => Promise<void>, n: number, warmUp: number): Promise<void> {
  await run(warmUp);
  // The warm-up's leftovers go first, so that the baseline holds only what stays.
  const baselineKeys = await steadyKeys();
  const before = await settledMemory(baselineKeys);
  const started = performance.now();
  await run(n);
  const ranMs = performance.now() - started;
  const after = await settledMemory(baselineKeys);
  const totalMs = performance.now() - started;
  console.log(
    `${label}: ${n.toLocaleString("en")} in ${(ranMs / 1000).toFixed(1)} s, pruned by ${(totalMs / 1000).toFixed(1)} s; used_memory ${before.toLocaleString("en")} before, ${after.toLocaleString("en")} after (${(((after - before) / before) * 100).toFixed(1)} %)`,
  );
  expect(after).toBeLessThanOrEqual(before * (1 + TOLERANCE));
}

/**
 * How many keys stay however long the soak runs (the counter floor, the ledger swarm's), once the
 * deleted index is empty, no key of a cycle's context is left and no write's record is.
 */
async function steadyKeys(): Promise<number> {
  const backoff = new Backoff(10, 500);
  for (;;) {
    const [deleted, cycles, records] = await Promise.all([redis.zcard(keys.index(0).deleted), redis.keys("soak:{ctx:cycle-*"), redis.keys("soak:*:resend:*")]);
    if (deleted === 0 && cycles.length === 0 && records.length === 0) return redis.dbsize();
    await backoff.wait();
  }
}

test(`${CYCLES.toLocaleString("en")} create/delete cycles leave used_memory within 10 % once the deleted contexts are pruned`, async () => {
  await churn("create/delete cycles", (n) => pool(n, cycle), CYCLES, 100);
});

test(
  `${PAIRS.toLocaleString("en")} allocate+release pairs leave used_memory within 10 % once the ended allocations are pruned`,
  async () => {
    await contexts.create("ledger", { resources: { limits: { credits: 1e12 } } }, actor);
    const pair = async () => {
      const a = await ledger.allocate("ledger", { request: [{ kind: "credits", amount: 10 }], mode: "EXACT", leaseMs: 60_000 }, actor);
      await ledger.release(a.id, [{ kind: "credits", amount: 1 }], actor);
    };
    await churn("allocate+release pairs", (n) => pool(n, pair), PAIRS, 1_000);
  },
);
