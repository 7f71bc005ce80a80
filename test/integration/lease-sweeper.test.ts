// Proves that the lease sweeper runs one pass at a time however long Redis takes to answer (a paused redis-server), and that passes failing other than by a lost connection are reported with their cause, once per run of failures.
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, expect, test, vi } from "vitest";
import { loadConfig } from "../../src/config.js";
import { connectRedis } from "../../src/redis/clients.js";
import { Keys } from "../../src/redis/keys.js";
import { LedgerStore } from "../../src/store/ledger.js";
import { PeriodicPass } from "../../src/store/periodic-pass.js";
import { startRedisServer, type RedisServer } from "../../support/redis-server.js";

let server: RedisServer;
let redis: Redis;
let keys: Keys;
let ledger: LedgerStore;

beforeAll(async () => {
  server = await startRedisServer();
  redis = await connectRedis({ url: server.url }, "lease-sweeper-test");
  keys = new Keys(`t-${randomUUID()}`);
  ledger = new LedgerStore(redis, keys, loadConfig([], {}));
});
afterAll(async () => {
  redis.disconnect();
  await server.stop();
});
afterEach(() => {
  vi.useRealTimers();
});

/** ledger.sweep(), counting the passes running at once (and the most ever), ended and failed. */
function countedSweep() {
  const counts = { running: 0, most: 0, ended: 0, failed: 0 };
  const sweep = async () => {
    counts.running++;
    counts.most = Math.max(counts.most, counts.running);
    try {
      return await ledger.sweep();
    } catch (err) {
      counts.failed++;
      throw err;
    } finally {
      counts.running--;
      counts.ended++;
    }
  };
  return { counts, sweep };
}

test("while Redis answers nothing, passes do not pile up: one runs at a time, and they go on once it answers", async () => {
  const { counts, sweep } = countedSweep();
  // Only the timers: Redis and the sockets stay real.
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
  const reports: unknown[] = [];
  const sweeper = new PeriodicPass(sweep, 100, (err) => reports.push(err));
  try {
    await vi.waitFor(() => expect(counts.ended).toBe(1));
    server.process.kill("SIGSTOP");
    try {
      // Twenty intervals go by while a pass waits for its reply.
      await vi.advanceTimersByTimeAsync(100 * 20);
      expect(counts.running).toBe(1);
    } finally {
      server.process.kill("SIGCONT");
    }
    await vi.waitFor(() => expect(counts.ended).toBeGreaterThanOrEqual(4));
    expect(counts.most).toBe(1);
    expect(reports).toEqual([]);
  } finally {
    sweeper.stop();
  }
});

test("a pass that fails other than by a lost connection is reported with its cause, once per run of failures", async () => {
  const { counts, sweep } = countedSweep();
  const reports: Error[] = [];
  // The lease index holds the wrong type: every pass fails on it until it is removed.
  await redis.set(keys.index(0).due, "not a sorted set");
  const sweeper = new PeriodicPass(sweep, 5, (err) => reports.push(err as Error));
  try {
    await vi.waitFor(() => expect(counts.failed).toBeGreaterThanOrEqual(3), { timeout: 10_000 });
    expect(reports.map((e) => e.message)).toEqual([expect.stringContaining("WRONGTYPE")]);
    await redis.del(keys.index(0).due);
    const failed = counts.failed;
    await vi.waitFor(() => expect(counts.ended - failed).toBeGreaterThanOrEqual(2), { timeout: 10_000 });
    await redis.set(keys.index(0).due, "not a sorted set");
    await vi.waitFor(() => expect(reports).toHaveLength(2), { timeout: 10_000 });
  } finally {
    sweeper.stop();
    await redis.del(keys.index(0).due);
  }
});
