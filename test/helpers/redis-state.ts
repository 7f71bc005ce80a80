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
  const guard = guardKeysOf(prefix);
  const keys = (await keysMatching(redis, `${prefix}:*`)).filter((key) => !key.startsWith(heartbeats) && !guard.has(key));
  const state: Record<string, unknown> = {};
  for (const key of keys.sort()) {
    const type = await redis.type(key);
    if (type === "string") state[key] = await redis.get(key);
    else if (type === "hash") state[key] = await redis.hgetall(key);
    else if (type === "zset") state[key] = await redis.zrange(key, 0, -1, "WITHSCORES");
    else if (type === "stream") state[key] = await redis.xrange(key, "-", "+");
    else if (type === "set") state[key] = (await redis.smembers(key)).sort();
    else if (type === "list") state[key] = await redis.lrange(key, 0, -1);
    else state[key] = type;
  }
  return state;
}

/** The keys matching `pattern` (SCAN MATCH), on every master of a cluster. */
export async function keysMatching(redis: RedisClient, pattern: string): Promise<string[]> {
  if (redis instanceof Cluster) await redis.ping();
  const found: string[] = [];
  for (const node of redis instanceof Cluster ? redis.nodes("master") : [redis]) {
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
  if (redis instanceof Cluster) await redis.ping();
  let count = 0;
  for (const node of redis instanceof Cluster ? redis.nodes("all") : [redis]) {
    const [, subscribers] = (await node.pubsub("NUMSUB", channel)) as [string, number];
    count += subscribers;
  }
  return count;
}
