import type { Server } from "node:http";
import type { RedisClient } from "../redis/clients.js";
import type { FeedHub } from "../feed/feed-hub.js";
import type { Logger } from "../observability/logger.js";
import { closeRedis } from "../redis/clients.js";
import type { StateGuard } from "../redis/state-guard.js";
import type { ContextStore } from "../store/contexts.js";
import type { Heartbeat } from "../store/instances.js";
import type { PeriodicPass } from "../store/periodic-pass.js";

/** `work`, or a rejection once `ms` have passed. */
export function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** What a shutdown closes (the server and WebSocket transport are absent if it never listened). */
export interface RunningParts {
  readonly server: Server | undefined;
  readonly ws: { close(graceMs: number): Promise<void> } | undefined;
  readonly feed: FeedHub;
  /** The lease sweeper and the deletion sweeper (none when leaseSweepMs is 0). */
  readonly sweepers: readonly PeriodicPass[];
  readonly heartbeat: Heartbeat;
  readonly state: StateGuard;
  readonly contexts: ContextStore;
  readonly redis: RedisClient;
  readonly log: Logger;
}

/**
 * Shuts down within `graceMs`: stops taking connections, ends every feed subscriber with
 * UNAVAILABLE and the cursors to resume from, lets in-flight requests finish, then closes Redis
 * (plus at most a second for pending writes and one for closing the Redis connections when Redis
 * is down or stalled). The caller has already made answers close their connections.
 */
export async function shutdown(parts: RunningParts, graceMs: number): Promise<void> {
  const { server, ws, feed, sweepers, heartbeat, state, contexts, redis, log } = parts;
  const deadline = performance.now() + graceMs;
  const remaining = () => Math.max(0, deadline - performance.now());
  // Stop taking connections. Connections that fall idle are closed, so that busy ones end with
  // their last response.
  const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : undefined;
  const closeIdle = setInterval(() => server?.closeIdleConnections(), 20);
  server?.closeIdleConnections();
  // End every feed subscriber with the cursors to resume from, and let those last messages and
  // every in-flight request finish, within the grace.
  feed.endSubscribers();
  await ws?.close(remaining());
  if (closed) {
    const timer = setTimeout(() => server!.closeAllConnections(), remaining());
    await closed;
    clearTimeout(timer);
  }
  clearInterval(closeIdle);
  for (const sweeper of sweepers) sweeper.stop();
  state.close();
  // Writes whose replies are pending get what is left of the grace (at least a second); with
  // Redis down they would wait for every reconnect attempt, so then the connections are dropped.
  // Leaving serverInstances shares that time: a stop that does not land is undone by the TTL.
  const [drained] = await Promise.all([
    withTimeout(contexts.drain(), Math.max(remaining(), 1_000)).then(
      () => true,
      () => false,
    ),
    withTimeout(heartbeat.stop(), Math.max(remaining(), 1_000)).catch(() => undefined),
  ]);
  // Redis may be stalled: QUIT waits at most what is left of the grace (at least a second).
  const quitWaitMs = Math.max(remaining(), 1_000);
  await Promise.all([feed.close(drained, quitWaitMs), drained ? closeRedis(redis, quitWaitMs) : redis.disconnect()]);
  log.info("closed", { drained });
}
