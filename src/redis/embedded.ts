import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

export interface EmbeddedRedis {
  /** The unix socket path to hand to ioredis. */
  readonly target: string;
  /** Shuts redis-server down cleanly (it fsyncs its AOF), killing it if it takes over 10 s. */
  stop(): Promise<void>;
}

async function ping(socket: string): Promise<Redis | null> {
  if (!existsSync(socket)) return null;
  const client = new Redis(socket, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.ping();
    return client;
  } catch {
    client.disconnect();
    return null;
  }
}

async function until(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts a private redis-server for this server: data in `dataDir` (created if missing) with
 * `appendonly yes` and `appendfsync always`, reachable only through the unix socket
 * `<dataDir>/redis.sock`. A redis-server a killed earlier run left on that socket is shut down
 * first, so two never share one AOF. Throws an Error of one sentence when redis-server is not
 * installed or does not come up within 10 s.
 */
export async function startEmbeddedRedis(dataDir: string): Promise<EmbeddedRedis> {
  if (spawnSync("redis-server", ["--version"]).error) {
    throw new Error(
      "redis-server was not found on PATH: install Redis (apt-get install redis-server) or set REDIS_URL to a Redis you run",
    );
  }
  mkdirSync(dataDir, { recursive: true });
  const socket = path.join(dataDir, "redis.sock");
  const orphan = await ping(socket);
  if (orphan) {
    await orphan.shutdown().catch(() => undefined);
    orphan.disconnect();
    await until(async () => !(await ping(socket).then((c) => (c?.disconnect(), c !== null))), STOP_TIMEOUT_MS, "the redis-server left by an earlier run did not stop");
  }
  const child = spawn(
    "redis-server",
    [
      "--port", "0",
      "--unixsocket", socket,
      "--unixsocketperm", "700",
      "--dir", dataDir,
      "--appendonly", "yes",
      "--appendfsync", "always",
      "--save", "",
      "--pidfile", path.join(dataDir, "redis.pid"),
      "--logfile", path.join(dataDir, "redis.log"),
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let dead = false;
  void exited.then(() => (dead = true));
  await until(
    async () => {
      if (dead) throw new Error(`the embedded redis-server exited at start; see ${path.join(dataDir, "redis.log")}`);
      const client = await ping(socket);
      client?.disconnect();
      return client !== null;
    },
    START_TIMEOUT_MS,
    "the embedded redis-server did not answer",
  );
  return {
    target: socket,
    stop: async () => {
      if (dead) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
