import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

export interface EmbeddedRedis {
  /** The unix socket path to hand to ioredis. */
  readonly target: string;
  /** Shuts redis-server down cleanly (it fsyncs its AOF), killing it if it takes over 10 s; no restart follows. */
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

/** What the embedded redis-server's supervisor reports. */
export interface EmbeddedRedisEvents {
  /** It exited without being asked to; it is started again after `restartInMs`. */
  exited(code: number | null, signal: string | null, restartInMs: number): void;
  /** It answers again after a restart (its AOF replayed). */
  restarted(): void;
}

/** First and longest wait before starting a redis-server that died, in ms. */
const RESTART_BACKOFF_MS = [100, 5_000] as const;

/**
 * Starts a private redis-server for this server: data in `dataDir` (created if missing) with
 * `appendonly yes` and `appendfsync always`, reachable only through the unix socket
 * `<dataDir>/redis.sock`. A redis-server a killed earlier run left on that socket is shut down
 * first, so two never share one AOF. If it dies later (a crash, `kill -9`), it is started again
 * on the same data after 100 ms, the wait doubling (up to 5 s) while restarts fail and back to
 * 100 ms once one answers; `events` hears of it.
 * Throws an Error of one sentence when redis-server is not installed or does not come up
 * within 10 s at start.
 */
export async function startEmbeddedRedis(dataDir: string, events: EmbeddedRedisEvents): Promise<EmbeddedRedis> {
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
  const args = [
    "--port", "0",
    "--unixsocket", socket,
    "--unixsocketperm", "700",
    "--dir", dataDir,
    "--appendonly", "yes",
    "--appendfsync", "always",
    "--save", "",
    "--pidfile", path.join(dataDir, "redis.pid"),
    "--logfile", path.join(dataDir, "redis.log"),
  ];
  let started = false;
  let stopping = false;
  /** The wait before the next restart: 100 ms after a restart that answered, doubling while they fail. */
  let backoffMs: number = RESTART_BACKOFF_MS[0];
  let current: { child: ChildProcess; exited: Promise<void>; dead: boolean };
  const answers = async () => {
    const client = await ping(socket);
    client?.disconnect();
    return client !== null;
  };
  const launch = () => {
    const child = spawn("redis-server", args, { stdio: "ignore" });
    const run = { child, dead: false, exited: new Promise<void>((resolve) => child.once("exit", () => resolve())) };
    child.once("exit", (code, signal) => {
      run.dead = true;
      if (stopping || !started) return;
      const waitMs = backoffMs;
      backoffMs = Math.min(backoffMs * 2, RESTART_BACKOFF_MS[1]);
      events.exited(code, signal, waitMs);
      setTimeout(() => {
        if (stopping) return;
        launch();
        void until(async () => current.dead || (await answers()), START_TIMEOUT_MS, "restart").then(
          () => {
            if (current.dead) return; // it died again: its exit starts the next attempt
            backoffMs = RESTART_BACKOFF_MS[0];
            events.restarted();
          },
          () => undefined, // not answering yet: if it dies, its exit starts the next attempt
        );
      }, waitMs);
    });
    current = run;
  };
  launch();
  await until(
    async () => {
      if (current.dead) throw new Error(`the embedded redis-server exited at start; see ${path.join(dataDir, "redis.log")}`);
      return answers();
    },
    START_TIMEOUT_MS,
    "the embedded redis-server did not answer",
  );
  started = true;
  return {
    target: socket,
    stop: async () => {
      stopping = true;
      if (current.dead) return;
      current.child.kill("SIGTERM");
      const timer = setTimeout(() => current.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await current.exited;
      clearTimeout(timer);
    },
  };
}
