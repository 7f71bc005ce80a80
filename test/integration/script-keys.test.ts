// Proves that the scripts stay in the slot of the keys they declare (a script handed a key base or key of another context's hash tag fails before it reads or writes anything), that they run again after Redis forgot them, and that a server's client can call a script first in the same tick as another command.
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { loadConfig } from "../../src/config.js";
import { connectRedis } from "../../src/redis/clients.js";
import { Keys } from "../../src/redis/keys.js";
import { scriptsOf } from "../../src/redis/scripts.js";
import { ContextStore } from "../../src/store/contexts.js";
import { startRedisServer, type RedisServer } from "../../support/redis-server.js";

let server: RedisServer;
let redis: Redis;
let keys: Keys;
let contexts: ContextStore;
const actor = { actor: "script-keys-test" };

beforeAll(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
  keys = new Keys(`t-${randomUUID()}`);
  contexts = new ContextStore(redis, keys, loadConfig([], {}));
});
afterAll(async () => {
  redis.disconnect();
  await server.stop();
});

/** Every key and value in Redis, to compare before and after. */
async function everything(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const key of (await redis.keys("*")).sort()) out.set(key, (await redis.dumpBuffer(key)).toString("base64"));
  return out;
}

const misplaced: [string, (a: string, b: string) => Promise<unknown>][] = [
  [
    "a ledger script given another context's key base",
    (a, b) => {
      const k = keys.context(a);
      return scriptsOf(redis).acquireLock(
        k.meta, k.seq, k.feed, keys.op(a, "x"), k.limits, k.policy, k.root, k.leases, k.allocs,
        "fp", a, keys.contextBase(b), actor.actor, "", 100, 60, keys.changesChannel, "l", "holder", 60_000,
      );
    },
  ],
  [
    "delete-context given another context's key base",
    (a, b) => {
      const k = keys.context(a);
      return scriptsOf(redis).deleteContext(
        k.meta, k.seq, k.snapshots, k.feed, keys.op(a, "x"), k.limits, k.policy,
        "fp", "", actor.actor, "", new Date().toISOString(), 100, 60, keys.changesChannel, a, keys.contextBase(b),
      );
    },
  ],
  [
    "update-context given another context's lock as its fence",
    (a, b) => {
      const k = keys.context(a);
      return scriptsOf(redis).updateContext(
        k.meta, k.seq, k.snapshots, k.feed, keys.op(a, "x"), k.limits, k.policy,
        "fp", "head", "", "=", "UPDATED", "[]", "[]", actor.actor, "", new Date().toISOString(), 10, 100, 60,
        keys.changesChannel, a, "head2", "-", "-", "l", 1, keys.context(b).lock("l"), "",
      );
    },
  ],
];

test.each(misplaced)("%s fails before it reads or writes", async (_, call) => {
  const [a, b] = [`a-${randomUUID()}`, `b-${randomUUID()}`];
  await contexts.create(a, { resources: { limits: { credits: 10 } } }, actor);
  await contexts.create(b, {}, actor);
  await contexts.drain();
  const before = await everything();
  await expect(call(a, b)).rejects.toThrow(/outside the hash tag of/);
  expect(await everything()).toEqual(before);
});

test("script commands run again after Redis forgets its scripts", async () => {
  const id = `f-${randomUUID()}`;
  await contexts.create(id, { n: 1 }, actor);
  await redis.script("FLUSH");
  expect((await contexts.patch(id, [{ op: "replace", path: "/n", value: 2 }], actor)).version).toBe(2);
  expect((await contexts.history(id, { direction: "forward", from: null, limit: 10, scanLimit: 10, maxBytes: 1_000_000, matches: null })).entries.map((e) => e.kind)).toEqual(["CREATED", "UPDATED"]);
});

test("a server's client calls a script for the first time in the same tick as another command", async () => {
  // Defining the script commands then, with an auto-pipeline of that tick open, made ioredis throw
  // outside any caller (results[i] is not iterable) and ended the server process.
  const client = await connectRedis({ url: server.url }, "script-keys-test");
  try {
    const [value, entries] = await Promise.all([client.get(`t-${randomUUID()}`), scriptsOf(client).readFeed(`t-${randomUUID()}`, "-", 10, 1_000, 10, 1_000, "")]);
    expect([value, entries]).toEqual([null, []]);
  } finally {
    client.disconnect();
  }
});

