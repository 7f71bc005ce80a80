// Proves the state guard's timing against a real Redis (it reads and marks the epoch with Redis commands and a script, so it is tested here, not with a fake): an operation during a reconnect waits for the check and goes on once the state is intact, or is refused UNAVAILABLE after 2 s if it stays unverified; and the epoch is read again every checkMs, so a state flushed since is found lost at the next tick, and marked so for every instance. Timers are fake where the guard waits; Redis is not.
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterEach, expect, inject, test, vi } from "vitest";
import { connectRedis } from "../../src/redis/clients.js";
import { Keys } from "../../src/redis/keys.js";
import { StateGuard, type StateStatus } from "../../src/redis/state-guard.js";

/** VERIFY_WAIT_MS in src/redis/state-guard.ts. */
const VERIFY_WAIT_MS = 2_000;
const CHECK_MS = 60_000;

const opened: { guard: StateGuard; redis: Redis }[] = [];

afterEach(() => {
  vi.useRealTimers();
  for (const { guard, redis } of opened.splice(0)) {
    guard.close();
    redis.disconnect();
  }
});

/** A guard on a fresh key prefix, its client, the statuses it reported and the epoch reads it made. */
async function open() {
  const redis = await connectRedis({ url: inject("redisUrl") }, "state-guard-test");
  const keys = new Keys(`t-${randomUUID()}`);
  const statuses: StateStatus[] = [];
  const reads: number[] = [];
  const listeners = new Set<(status: StateStatus) => void>();
  const changed = (status: StateStatus) => {
    statuses.push(status);
    for (const listener of listeners) listener(status);
  };
  const guard = await StateGuard.open(redis, keys, CHECK_MS, { changed, roundTripMs: (ms) => reads.push(ms) });
  opened.push({ guard, redis });
  /**
   * Resolves when the guard next reports `status`; rejects after 10 s. (Not vi.waitFor: with fake
   * timers it advances them, and AbortSignal.timeout's timer is one they leave alone.)
   */
  const reports = (status: StateStatus) =>
    new Promise<void>((resolve, reject) => {
      const listener = (reported: StateStatus) => {
        if (reported !== status) return;
        listeners.delete(listener);
        resolve();
      };
      listeners.add(listener);
      AbortSignal.timeout(10_000).onabort = () => {
        listeners.delete(listener);
        reject(new Error(`the guard did not report "${status}" within 10 s`));
      };
    });
  return { guard, redis, keys, statuses, reads, reports };
}

/** Whether `promise` has settled yet, once pending callbacks have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  const pending = {};
  return (await Promise.race([promise.then(() => true, () => true), new Promise((resolve) => setImmediate(() => resolve(pending)))])) !== pending;
}

/** A guard whose connection just dropped, and an operation that has waited 1 ms short of VERIFY_WAIT_MS (fake timers). */
async function waitingOnADroppedConnection() {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  const opened = await open();
  const unverified = opened.reports("unverified");
  opened.redis.disconnect();
  await unverified;
  const waiting = opened.guard.whenIntact()!;
  vi.advanceTimersByTime(VERIFY_WAIT_MS - 1);
  expect(await settled(waiting)).toBe(false);
  return { ...opened, waiting };
}

test("an operation during a reconnect waits for the check, and goes on once it finds the state intact", async () => {
  const { guard, redis, statuses, reports, waiting } = await waitingOnADroppedConnection();
  const intact = reports("intact");
  await redis.connect();
  await intact;
  await expect(waiting).resolves.toBeUndefined();
  expect(statuses).toEqual(["intact", "unverified", "intact"]);
  expect(guard.whenIntact()).toBeUndefined();
});

test("an operation waits at most 2 s for a state that stays unverified, then is refused UNAVAILABLE", async () => {
  const { guard, waiting } = await waitingOnADroppedConnection();
  vi.advanceTimersByTime(1);
  expect(await settled(waiting)).toBe(true);
  await expect(waiting).rejects.toMatchObject({ code: "UNAVAILABLE", details: { state: "unverified" } });
  expect(guard.current).toBe("unverified");
});

test("every checkMs the epoch is read again: one gone since is marked lost, and operations are refused", async () => {
  vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
  const { guard, redis, keys, reads, reports } = await open();
  await redis.del(keys.epoch);
  vi.advanceTimersByTime(CHECK_MS - 1);
  // A read of the epoch started before this PING would have been answered before it.
  await redis.ping();
  expect(reads).toHaveLength(1);
  expect(guard.current).toBe("intact");

  const lost = reports("lost");
  vi.advanceTimersByTime(1);
  await lost;
  expect(await redis.get(keys.epoch)).toBe("lost");
  await expect(guard.whenIntact()).rejects.toMatchObject({ code: "UNAVAILABLE", details: { state: "lost" } });
});

test("checks that overlap share one read of the epoch", async () => {
  const { guard, reads } = await open();
  const first = guard.check();
  expect(guard.check()).toBe(first);
  await first;
  expect(reads).toHaveLength(2);
});
