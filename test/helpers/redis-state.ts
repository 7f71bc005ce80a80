import { Cluster } from "ioredis";
import { CLUSTER_SLOTS, EPOCH_REGISTRY_COPIES, Keys } from "../../src/redis/keys.js";
import type { RedisClient } from "../../src/redis/clients.js";

/** The state guard's keys under one prefix (src/redis/state-guard.ts), by prefix. */
const guardKeys = new Map<string, ReadonlySet<string>>();

function guardKeysOf(prefix: string): ReadonlySet<string> {
  let found = guardKeys.get(prefix);
  if (!found) {
    const keys = new Keys(prefix);
    found = new Set([
      keys.epoch,
      ...Array.from({ length: CLUSTER_SLOTS }, (_, slot) => keys.slotEpoch(slot)),
      ...Array.from({ length: EPOCH_REGISTRY_COPIES }, (_, copy) => keys.epochRegistry(copy)),
    ]);
    guardKeys.set(prefix, found);
  }
  return found;
}

/**
 * Every key under `prefix` with its type and full value, to prove that a refused operation
 * changed nothing. TTLs are left out, and so are the server instances' heartbeats
 * (serverInstances), which change on their own, and the state guard's epochs and registry: on a
 * Redis Cluster a slot's epoch is written when an operation first touches the slot, refused or not.
 */
export async function redisState(redis: RedisClient, prefix: string): Promise<Record<string, unknown>> {
  const heartbeats = new Keys(prefix).instanceIndex;
  const found = (await keysMatching(redis, `${prefix}:*`)).filter((key) => !key.startsWith(heartbeats));
  // The guard's key set (16,384 slot epochs) is built only where the prefix holds one of them:
  // tests read the state of one context (its key base as the prefix) far more often.
  const guard = found.some((key) => key === new Keys(prefix).epoch || key.startsWith(`${prefix}:{ep`)) ? guardKeysOf(prefix) : new Set<string>();
  const keys = found.filter((key) => !guard.has(key));
  // Every key's type, then every value, each sent all at once: one round trip each, not two per key.
  const sorted = keys.sort();
  const types = await Promise.all(sorted.map((key) => redis.type(key)));
  const values = await Promise.all(
    sorted.map(async (key, i): Promise<unknown> => {
      const type = types[i];
      if (type === "string") return redis.get(key);
      if (type === "hash") return redis.hgetall(key);
      if (type === "zset") return redis.zrange(key, 0, -1, "WITHSCORES");
      if (type === "stream") return redis.xrange(key, "-", "+");
      if (type === "set") return (await redis.smembers(key)).sort();
      if (type === "list") return redis.lrange(key, 0, -1);
      return type;
    }),
  );
  const state: Record<string, unknown> = {};
  sorted.forEach((key, i) => (state[key] = values[i]));
  return state;
}

/** The keys matching `pattern` (SCAN MATCH), on every master of a cluster. */
export async function keysMatching(redis: RedisClient, pattern: string): Promise<string[]> {
  const found: string[] = [];
  for (const node of await nodesOf(redis, "master")) {
    let cursor = "0";
    do {
      const [next, batch] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      found.push(...batch);
      cursor = next;
    } while (cursor !== "0");
  }
  return found;
}

/** How many connections subscribe to `channel` (PUBSUB NUMSUB), summed over every node of a cluster. */
export async function channelSubscribers(redis: RedisClient, channel: string): Promise<number> {
  let count = 0;
  for (const node of await nodesOf(redis, "all")) {
    const [, subscribers] = (await node.pubsub("NUMSUB", channel)) as [string, number];
    count += subscribers;
  }
  return count;
}

/** The nodes of a cluster with `role` (known once the client has connected), or the one Redis. */
async function nodesOf(redis: RedisClient, role: "master" | "all"): Promise<RedisClient[]> {
  if (!(redis instanceof Cluster)) return [redis];
  await redis.ping();
  return redis.nodes(role);
}
