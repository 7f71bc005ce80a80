// Proves that a key's rate limit, shared by instances through leases, admits at most the limit plus one lease per other instance in a window, never refuses a key under its limit, refuses over it with RATE_LIMITED and retryAfterMs, and costs far fewer Redis calls than requests.
import fc from "fast-check";
import { afterAll, beforeAll, expect, test } from "vitest";
import { connectRedis, type RedisClient } from "../../src/redis/clients.js";
import { Keys } from "../../src/redis/keys.js";
import { RateLimiter, type RateDecision } from "../../src/security/rate-limiter.js";
import { startTestServer, testConfig, type TestServer } from "../helpers/app.js";
import { watchCommands } from "../helpers/monitor.js";
import { testKeys } from "../helpers/keys.js";

/** Long enough that every request of a test falls in one window however busy the machine: the tests bound the work, not the time. */
const WINDOW_MS = 3_600_000;

const clients: RedisClient[] = [];

beforeAll(async () => {
  const { redisUrl, redisClusterNodes } = testConfig();
  const target = redisClusterNodes ? { clusterNodes: redisClusterNodes.split(",") } : { url: redisUrl! };
  // One client per simulated instance, as separate server processes have.
  for (let i = 0; i < 4; i++) clients.push(await connectRedis(target, `rate-limit-test-${i}`));
});

afterAll(() => {
  for (const client of clients) client.disconnect();
});

/** The margin a window may exceed its limit by: one largest lease per instance but one. */
function margin(limit: number, leasePercent: number, instances: number): number {
  return (instances - 1) * Math.floor((limit * leasePercent) / 100);
}

test("any interleaving of bursts on several instances: at most the limit plus the margin admitted, and a refusal only once the limit was reached", async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 60 }),
      fc.integer({ min: 0, max: 100 }),
      fc.integer({ min: 1, max: 4 }),
      // Rounds of bursts that race each other: [instance, requests] per burst.
      fc.array(fc.array(fc.tuple(fc.nat(3), fc.integer({ min: 1, max: 15 })), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 12 }),
      async (limit, leasePercent, instances, rounds) => {
        const keys = new Keys(`t-rate-prop-${process.pid}-${run++}`);
        const limiters = clients.slice(0, instances).map((client) => new RateLimiter(client, keys, { limit, windowMs: WINDOW_MS, leasePercent }));
        let admitted = 0;
        let refused = 0;
        let sent = 0;
        const count = (decision: RateDecision) => {
          if (decision.admitted === true) admitted++;
          else if (decision.admitted === false) {
            refused++;
            expect(decision.retryAfterMs).toBeGreaterThan(0);
            expect(decision.retryAfterMs).toBeLessThanOrEqual(WINDOW_MS + 5_000);
          } else throw decision.error;
        };
        for (const round of rounds) {
          const answers = round.flatMap(([instance, requests]) => {
            sent += requests;
            return Array.from({ length: requests }, () => Promise.resolve(limiters[instance % instances]!.admit("k")).then(count));
          });
          await Promise.all(answers);
        }
        expect(admitted + refused).toBe(sent);
        expect(admitted).toBeLessThanOrEqual(limit + margin(limit, leasePercent, instances));
        // The window's count holds only admitted requests: a refusal means the limit was reached.
        if (refused > 0) expect(admitted).toBeGreaterThanOrEqual(limit);
        // One instance cannot pass the limit at all.
        if (instances === 1) expect(admitted).toBe(Math.min(sent, limit));
      },
    ),
    { numRuns: 40 },
  );
});

interface Flood {
  /** Answers by outcome: admitted, RATE_LIMITED (each checked), anything else (a failure). */
  readonly admitted: number;
  readonly limited: number;
  readonly other: string[];
  /** The rate-limit script's calls seen by Redis. */
  readonly calls: number;
}

/**
 * Sends `total` requests of one key, `concurrency` at a time, alternating between `servers`, and
 * counts the answers and the calls of the rate-limit script on the key's window (MONITOR).
 */
async function flood(servers: readonly TestServer[], authorization: string, total: number, concurrency: number): Promise<Flood> {
  const { config } = servers[0]!;
  const window = new Keys(config.keyPrefix).rate("admin-1");
  const nodes = config.redisClusterNodes?.split(",").map((node) => `redis://${node}`) ?? [config.redisUrl!];
  let calls = 0;
  const watches = await Promise.all(nodes.map((url) => watchCommands(url, (args, source) => source !== "lua" && args.includes(window) && calls++)));
  let admitted = 0;
  let limited = 0;
  const other: string[] = [];
  let next = 0;
  const client = async () => {
    for (let i = next++; i < total; i = next++) {
      const res = await fetch(servers[i % servers.length]!.url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization },
        body: JSON.stringify({ query: "{ __typename }" }),
      });
      const body = (await res.json()) as { data?: unknown; errors?: { extensions?: Record<string, unknown> }[] };
      const extensions = body.errors?.[0]?.extensions;
      if (res.status === 200 && body.data && !body.errors) admitted++;
      else if (res.status === 429 && extensions?.code === "RATE_LIMITED" && typeof extensions.retryAfterMs === "number" && extensions.retryAfterMs > 0 && extensions.retryAfterMs <= WINDOW_MS + 5_000) limited++;
      else other.push(`HTTP ${res.status} ${JSON.stringify(body)}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, client));
  } finally {
    await Promise.all(watches.map((watch) => watch.settle()));
    for (const watch of watches) watch.stop();
  }
  return { admitted, limited, other, calls };
}

/** Two instances of one deployment with `limit` requests per (long) window and the default lease, and the Authorization of their admin key. */
async function twoInstances(limit: number): Promise<{ servers: [TestServer, TestServer]; authorization: string }> {
  const { ring, admin } = testKeys();
  const a = await startTestServer({ keys: ring, rateLimit: limit, rateWindowMs: WINDOW_MS });
  const b = await startTestServer({ keys: ring, rateLimit: limit, rateWindowMs: WINDOW_MS, keyPrefix: a.config.keyPrefix });
  return { servers: [a, b], authorization: admin.authorization };
}

test("two instances under many concurrent clients: the limit holds within one lease, the rest is RATE_LIMITED with retryAfterMs", async () => {
  const limit = 400;
  const { servers, authorization } = await twoInstances(limit);
  try {
    const result = await flood(servers, authorization, 3 * limit, 32);
    expect(result.other).toEqual([]);
    expect(result.admitted + result.limited).toBe(3 * limit);
    // Default lease: 5 % of the limit, so the second instance can add at most 20.
    expect(result.admitted).toBeGreaterThanOrEqual(limit);
    expect(result.admitted).toBeLessThanOrEqual(limit + margin(limit, servers[0].config.rateLeasePercent, 2));
    // Refusals are answered from what the instance knows: no call per refused request either.
    expect(result.calls).toBeLessThan(0.1 * 3 * limit);
  } finally {
    await Promise.all(servers.map((server) => server.close()));
  }
});

test("a key under its limit is never refused, and its requests cost well under one Redis call each", async () => {
  const limit = 1_000;
  const { servers, authorization } = await twoInstances(limit);
  try {
    const total = limit - 50;
    const result = await flood(servers, authorization, total, 32);
    expect(result.other).toEqual([]);
    expect(result.limited).toBe(0);
    expect(result.admitted).toBe(total);
    expect(result.calls).toBeGreaterThan(0);
    expect(result.calls / total).toBeLessThan(0.1);
  } finally {
    await Promise.all(servers.map((server) => server.close()));
  }
});
