import { Cluster, Redis, type RedisOptions } from "ioredis";
import { scriptsOf } from "./scripts.js";

/** How often a cluster client reads the slot map again, in ms (see connectRedis). */
const SLOTS_REFRESH_MS = 1_000;

/** A connection to the deployment's Redis: one server, or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: one server (a `redis://` / `rediss://` URL or a unix socket path), or a Redis Cluster's seed nodes (`host:port`). */
export type RedisTarget = { readonly url: string } | { readonly clusterNodes: readonly string[] };

/**
 * Opens a command connection to `target`. With `waitMs`, a command not answered within about
 * `waitMs` of being issued (sent, or queued while reconnecting) rejects with "Command timed out";
 * without it, commands wait as long as Redis takes. With `waitReplicas` > 0 (which needs
 * `waitMs`), each write script is confirmed by that many replicas of its master, waiting at most
 * a quarter of `waitMs` for them, before it resolves (see scripts.ts confirmedWrite; it throws
 * UNAVAILABLE when too few confirm). Resolves once Redis answers PING (on a cluster, once the
 * slots are known and the node of one answers); rejects with the connection error otherwise,
 * without retrying.
 */
export async function connectRedis(target: { readonly url: string }, name: string, waitMs?: number, waitReplicas?: number): Promise<Redis>;
export async function connectRedis(target: RedisTarget, name: string, waitMs?: number, waitReplicas?: number): Promise<RedisClient>;
export async function connectRedis(target: RedisTarget, name: string, waitMs?: number, waitReplicas = 0): Promise<RedisClient> {
  if (waitReplicas > 0 && waitMs === undefined) throw new Error("connectRedis: waitReplicas needs waitMs, which bounds the WAIT");
  const options: RedisOptions = {
    connectionName: name,
    lazyConnect: true,
    // A stalled Redis (stopped, swapping, stuck in a slow script) keeps the connection up, so
    // nothing else would end the wait. ioredis times a command from when it is written, and with
    // auto-pipelining (below) a command issued while a batch is in flight is written once that
    // batch is settled: at most one timeout later. Half of waitMs each keeps the whole wait
    // within it. A timed-out command stays queued: if Redis answers it later, the reply is
    // matched to it (replies come in order) and dropped, and if it was waiting for a reconnect
    // it is sent then. So it may still run: its outcome is unknown, and the write records
    // (below) make a retry with the same opId safe. No blocking command (XREAD BLOCK, BLPOP) is
    // sent on these connections, which a timeout would cut short.
    commandTimeout: waitMs === undefined ? undefined : Math.ceil(waitMs / 2),
    // Commands wait for a reconnect rather than fail at once, and ioredis resends those whose
    // reply the dropped connection lost; every write's record (store/script-replies.ts opRecord)
    // makes that resend safe. A command fails after 20 failed reconnects (each at most the 10 s
    // connect timeout plus a back-off of at most 2 s): within 4 minutes, inside the default
    // SWARM_RESEND_TTL_SECONDS of 300.
    maxRetriesPerRequest: 20,
  };
  // Commands issued in the same tick share one socket write: far fewer syscalls under load. On a
  // cluster, ioredis groups them by node: a script defined with defineCommand (scripts.ts) by the
  // slot of its first key.
  const redis =
    "url" in target
      ? new Redis(target.url, { ...options, enableAutoPipelining: true })
      : new Cluster(target.clusterNodes.map(clusterNode), {
          redisOptions: options,
          lazyConnect: true,
          enableAutoPipelining: true,
          // ioredis follows a MOVED for a single command, but not for a pipeline whose commands
          // got different answers (auto-pipelining makes most of ours such): those fail, and
          // nothing refreshes the slot map until a connection drops. Refreshing it every second
          // bounds how long a failover or a moved slot is answered with UNAVAILABLE.
          slotsRefreshInterval: SLOTS_REFRESH_MS,
        });
  redis.on("error", () => {
    // Reconnects are ioredis's job; errors reach callers through the commands that fail.
  });
  // The scripts are defined before the first command: defining a command while an auto-pipeline
  // of the same tick is open leaves that pipeline without it, and ioredis 5.9 then throws
  // "results[i] is not iterable" outside any caller's reach (redis/ioredis#1931), ending the process.
  // A quarter: WAIT is sent with the script, so both replies must come within one command
  // timeout (half of waitMs, above), the script's time and the commands ahead of them included.
  scriptsOf(redis, waitReplicas > 0 ? { replicas: waitReplicas, timeoutMs: Math.max(1, Math.floor(waitMs! / 4)) } : undefined);
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  return redis;
}

/**
 * Whether `err` is ioredis giving up on a command because the connection went away or stalled:
 * aborted in a pipeline the dropped connection cut, past its resend attempts, sent on a closed
 * connection, or unanswered within the connection's command timeout (see connectRedis); or, on a
 * cluster, a node answering that the slot is elsewhere (MOVED, ASK: a failover or reshard the
 * client's slot map has not caught up with) or that the cluster cannot serve it now
 * (CLUSTERDOWN, TRYAGAIN); or a node restarted under a connection that had sent it a script
 * (NOSCRIPT: ioredis sends the source again by itself, but not for a command in an
 * auto-pipeline), or is still loading its data (LOADING). Such a command may or may not have run
 * in Redis.
 */
export function isConnectionFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === "ReplyError" && /^(MOVED|ASK|CLUSTERDOWN|TRYAGAIN|NOSCRIPT|LOADING) /.test(err.message)) return true;
  return (
    err.name === "MaxRetriesPerRequestError" ||
    (err.name === "AbortError" && err.message.startsWith("Command aborted due to connection close")) ||
    err.message === "Connection is closed." ||
    err.message === "Command timed out"
  );
}

/**
 * Closes `client`: politely (QUIT, after the replies already on their way) when it is connected
 * and answers within `waitMs`, else by dropping the connection, so that closing never waits on a
 * stalled or unreachable Redis. Never throws.
 */
export async function closeRedis(client: RedisClient, waitMs: number): Promise<void> {
  if (client.status === "ready") {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), waitMs)));
    const quit = client.quit().then(
      () => true,
      () => false,
    );
    const quitted = await Promise.race([quit, gaveUp]);
    clearTimeout(timer);
    if (quitted) return;
  }
  client.disconnect();
}

/** `host:port` as ioredis's cluster seed; throws on anything else. */
function clusterNode(node: string): { host: string; port: number } {
  const match = /^(.+):(\d{1,5})$/.exec(node);
  if (!match) throw new Error(`a Redis Cluster node must be host:port, not ${JSON.stringify(node)}`);
  return { host: match[1]!, port: Number(match[2]) };
}
