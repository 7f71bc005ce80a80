import { AppError, ErrorCode } from "../src/errors.js";
import type { LostShard, StateStatus } from "../src/redis/state-guard.js";
import type { ServerInstance } from "../src/store/instances.js";
import type { RequestContext } from "./request-context.js";

export interface HealthReport {
  readonly ok: boolean;
  readonly redisReachable: boolean;
  readonly redisLatencyMs: number | null;
  readonly state: StateStatus;
  /** On a Redis Cluster, the masters serving slots whose state is lost, and those slots. */
  readonly lostShards: readonly LostShard[];
}

/**
 * Whether this instance can serve: its Redis answers a PING and still holds the deployment's
 * state. A Redis that does not answer (down, or stalled with its connection up) cannot be
 * verified: the state is then reported "unverified" unless it is known to be lost.
 */
export async function health(ctx: RequestContext): Promise<HealthReport> {
  try {
    const latency = await ctx.pingRedis();
    const state = ctx.state.current;
    return { ok: state === "intact", redisReachable: true, redisLatencyMs: latency, state, lostShards: ctx.state.lostShards() };
  } catch {
    const state = ctx.state.current === "lost" ? "lost" : "unverified";
    return { ok: false, redisReachable: false, redisLatencyMs: null, state, lostShards: ctx.state.lostShards() };
  }
}

const REINITIALIZE_CONFIRMATION = "the state is lost";

/**
 * Declares Redis's present content the deployment's state after it was lost (see
 * src/redis/state-guard.ts); every instance serves again within SWARM_STATE_CHECK_MS. On a Redis
 * Cluster, `node` (host:port of a master) limits it to the lost slots that master serves. Returns
 * the state after the change. `confirm` must be "the state is lost" so that nobody does it by
 * accident; throws VALIDATION_FAILED otherwise, or for a `node` that is no master.
 */
export async function reinitialize(args: { confirm: string; node?: string | null }, ctx: RequestContext): Promise<StateStatus> {
  if (args.confirm !== REINITIALIZE_CONFIRMATION) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, `confirm must be ${JSON.stringify(REINITIALIZE_CONFIRMATION)}`, { path: "confirm" });
  }
  await ctx.state.reinitialize(args.node ?? null);
  return ctx.state.current;
}

/** Every running server instance, from the heartbeats in Redis. */
export function serverInstances(ctx: RequestContext): Promise<ServerInstance[]> {
  return ctx.serverInstances();
}
