import { Redis } from "ioredis";

/**
 * Opens a command connection to `target`: a `redis://` / `rediss://` URL or a unix socket path.
 * Resolves once Redis answers PING; rejects with the connection error otherwise, without retrying.
 */
export async function connectRedis(target: string, name: string): Promise<Redis> {
  const redis = new Redis(target, {
    connectionName: name,
    lazyConnect: true,
    // Commands wait for a reconnect rather than fail at once, and ioredis resends those whose
    // reply the dropped connection lost; every write's record (store/script-replies.ts opRecord)
    // makes that resend safe. A command fails after 20 failed reconnects (each at most the 10 s
    // connect timeout plus a back-off of at most 2 s): within 4 minutes, inside the default
    // SWARM_RESEND_TTL_SECONDS of 300.
    maxRetriesPerRequest: 20,
    // Commands issued in the same tick share one socket write: far fewer syscalls under load.
    enableAutoPipelining: true,
  });
  redis.on("error", () => {
    // Reconnects are ioredis's job; errors reach callers through the commands that fail.
  });
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
 * Whether `err` is ioredis giving up on a command because the connection went away: aborted in a
 * pipeline the dropped connection cut, past its resend attempts, or sent on a closed connection.
 * Such a command may or may not have run in Redis.
 */
export function isConnectionFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    err.name === "MaxRetriesPerRequestError" ||
    (err.name === "AbortError" && err.message.startsWith("Command aborted due to connection close")) ||
    err.message === "Connection is closed."
  );
}
