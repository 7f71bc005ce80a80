import type { RedisClient } from "../../src/redis/clients.js";

/** Waits until Redis's clock (the one leases use) is past the instant `iso`. */
export async function redisTimePast(redis: RedisClient, iso: string): Promise<void> {
  const end = Date.parse(iso);
  for (;;) {
    const [s, us] = await redis.time();
    if (Number(s) * 1000 + Math.floor(Number(us) / 1000) > end) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}
