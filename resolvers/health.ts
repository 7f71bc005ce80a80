import type { RequestContext } from "./request-context.js";

export interface HealthReport {
  readonly ok: boolean;
  readonly redisReachable: boolean;
  readonly redisLatencyMs: number | null;
}

/** Whether this instance can serve: it answers, and its Redis answers a PING. */
export async function health(ctx: RequestContext): Promise<HealthReport> {
  try {
    const latency = await ctx.pingRedis();
    return { ok: true, redisReachable: true, redisLatencyMs: latency };
  } catch {
    return { ok: false, redisReachable: false, redisLatencyMs: null };
  }
}
