import type { Redis } from "ioredis";
import { Keys } from "../../src/redis/keys.js";

/**
 * Every key under `prefix` with its type and full value, to prove that a refused operation
 * changed nothing. TTLs are left out, and so are the server instances' heartbeats
 * (serverInstances): they change on their own.
 */
export async function redisState(redis: Redis, prefix: string): Promise<Record<string, unknown>> {
  const heartbeats = new Keys(prefix).instanceIndex;
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    keys.push(...batch.filter((key) => !key.startsWith(heartbeats)));
    cursor = next;
  } while (cursor !== "0");
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
