// Seeds the overview benchmark's deployments: `count` contexts under one key prefix, created through the store (each create is its script plus the index writes around it), many at a time, not over HTTP.
import { Redis } from "ioredis";
import { loadConfig } from "../src/config.js";
import { Keys } from "../src/redis/keys.js";
import { ContextStore } from "../src/store/contexts.js";

/** Creates contexts `ov-000000` ... under `prefix`, `parallel` at a time; resolves with the seconds it took. */
export async function seedContexts(redisUrl: string, prefix: string, count: number, parallel = 500): Promise<number> {
  const redis = new Redis(redisUrl, { enableAutoPipelining: true });
  const store = new ContextStore(redis, new Keys(prefix), loadConfig([], {}));
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const n = next++;
      await store.create(`ov-${String(n).padStart(6, "0")}`, { metadata: { n }, resources: { limits: { credits: 1000 } } }, { actor: "bench" });
    }
  };
  try {
    await Promise.all(Array.from({ length: parallel }, worker));
  } finally {
    redis.disconnect();
  }
  return (performance.now() - started) / 1000;
}
