import type { IndexKeys, Keys } from "../../src/redis/keys.js";
import type { RedisClient } from "../../src/redis/clients.js";

/** One of the sorted sets of the deployment-wide indexes (keys.ts IndexKeys). */
export type IndexName = Exclude<keyof IndexKeys, "counterFloor">;

/** `ids` grouped by the index shard that files each. */
function byShard(keys: Keys, ids: readonly string[]): Map<number, string[]> {
  const shards = new Map<number, string[]>();
  for (const id of ids) {
    const shard = keys.shardOf(id);
    if (!shards.has(shard)) shards.set(shard, []);
    shards.get(shard)!.push(id);
  }
  return shards;
}

/** Files each id of `scores` (id -> score) in the index `name` of its shard, as the server would: one ZADD per shard. */
export async function fileInIndex(redis: RedisClient, keys: Keys, name: IndexName, scores: ReadonlyMap<string, number>): Promise<void> {
  await Promise.all(
    [...byShard(keys, [...scores.keys()])].map(([shard, ids]) => redis.zadd(keys.index(shard)[name], ...ids.flatMap((id) => [scores.get(id)!, id]))),
  );
}

/** Removes `ids` from the index `name` of their shards. */
export async function dropFromIndex(redis: RedisClient, keys: Keys, name: IndexName, ids: readonly string[]): Promise<void> {
  await Promise.all([...byShard(keys, ids)].map(([shard, group]) => redis.zrem(keys.index(shard)[name], ...group)));
}

/** Every entry of the index `name` over all its shards: id -> score, by id. */
export async function readIndex(redis: RedisClient, keys: Keys, name: IndexName): Promise<Map<string, number>> {
  const shards = await Promise.all(keys.indexes.map((ix) => redis.zrange(ix[name], 0, -1, "WITHSCORES")));
  const entries: [string, number][] = [];
  for (const flat of shards) for (let i = 0; i < flat.length; i += 2) entries.push([flat[i]!, Number(flat[i + 1])]);
  return new Map(entries.sort(([a], [b]) => (a < b ? -1 : 1)));
}
