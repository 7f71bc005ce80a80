import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, realpathSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import path from "node:path";
import { Redis } from "ioredis";

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

export interface EmbeddedRedis {
  /** The unix socket path to hand to ioredis. */
  readonly target: string;
  /** Whether this process joined the redis-server of another server on the same data directory. */
  readonly joined: boolean;
  /** The pid of the server that owns (started and supervises) the redis-server: this process unless joined. */
  readonly ownerPid: number;
  /**
   * The owner shuts redis-server down cleanly (it fsyncs its AOF), killing it if it takes over
   * 10 s, with no restart after, and gives up the data directory; a joined process leaves both alone.
   */
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

/** The Linux abstract unix socket naming `dataDir`'s lock: the same for every path to the directory. */
function lockName(dataDir: string): string {
  return `\0swarm-context:${createHash("sha256").update(realpathSync(dataDir)).digest("hex")}`;
}

/**
 * The pid the holder of the lock `name` answers with, or null when nobody holds it. Throws when
 * the holder accepts the connection but does not answer within 10 s.
 */
function lockHolder(name: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    let answer = "";
    const socket = connect(name);
    socket.setEncoding("utf8");
    socket.setTimeout(START_TIMEOUT_MS, () => {
      socket.destroy();
      reject(new Error(`the server that holds the data directory does not answer within ${START_TIMEOUT_MS / 1000} s`));
    });
    socket.on("data", (chunk: string) => (answer += chunk));
    // No pid: the holder is exiting, so the lock is about to be free.
    socket.on("end", () => resolve(answer ? Number(answer) : null));
    socket.on("error", () => resolve(null));
  });
}

/**
 * Takes `dataDir`'s lock, named `name`, or finds who holds it. The lock is a Linux abstract unix socket, which
 * the kernel frees when its holder exits, even by kill -9: no stale lock file to judge and no pid
 * that another process may have reused. Its holder answers every connection with its pid.
 */
async function lockDataDir(dataDir: string, name: string): Promise<{ held: Server } | { ownerPid: number }> {
  for (;;) {
    const server = createServer((socket) => socket.end(String(process.pid)));
    const failed = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      server.once("error", resolve);
      server.listen(name, () => resolve(null));
    });
    if (!failed) return { held: server.unref() };
    if (failed.code !== "EADDRINUSE") {
      throw new Error(`cannot lock the data directory ${dataDir} (${failed.message}): set REDIS_URL to a Redis you run`);
    }
    const ownerPid = await lockHolder(name);
    if (ownerPid !== null) return { ownerPid };
    // Its holder exited between our listen and our connect: take it now.
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
 * `<dataDir>/redis.sock`. The server that starts it owns the data directory (a lock the kernel
 * frees when it exits, however it exits) until stop(); a server started on a data directory
 * that another one owns joins that one's redis-server instead (waiting for it to answer, at most
 * 10 s): it neither supervises nor stops it. Only the owner starts redis-server, so two never
 * share one AOF: a redis-server left running by an owner that was killed is shut down first. If
 * it dies later (a crash, `kill -9`), the owner starts it again on the same data after 100 ms,
 * the wait doubling (up to 5 s) while restarts fail and back to 100 ms once one answers;
 * `events` hears of it.
 * Throws an Error of one sentence when redis-server is not installed, when the data directory
 * cannot be locked (the lock needs Linux), or when redis-server does not come up within 10 s.
 */
export async function startEmbeddedRedis(dataDir: string, events: EmbeddedRedisEvents): Promise<EmbeddedRedis> {
  if (spawnSync("redis-server", ["--version"]).error) {
    throw new Error(
      "redis-server was not found on PATH: install Redis (apt-get install redis-server) or set REDIS_URL to a Redis you run",
    );
  }
  mkdirSync(dataDir, { recursive: true });
  const socket = path.join(dataDir, "redis.sock");
  const answers = async () => {
    const client = await ping(socket);
    client?.disconnect();
    return client !== null;
  };
  const name = lockName(dataDir);
  for (;;) {
    const lock = await lockDataDir(dataDir, name);
    if ("held" in lock) {
      try {
        return await own(dataDir, socket, answers, lock.held, events);
      } catch (err) {
        lock.held.close();
        throw err;
      }
    }
    // The owner may still be starting its redis-server; if it exits meanwhile, try to own it.
    let ownerGone = false;
    await until(
      async () => (await answers()) || (ownerGone = (await lockHolder(name)) === null),
      START_TIMEOUT_MS,
      `the redis-server of the server with pid ${lock.ownerPid}, which owns ${dataDir}, did not answer`,
    );
    if (!ownerGone) return { target: socket, joined: true, ownerPid: lock.ownerPid, stop: async () => undefined };
  }
}

/** Starts and supervises the redis-server of `dataDir`, whose lock this process holds as `lock`. */
async function own(
  dataDir: string,
  socket: string,
  answers: () => Promise<boolean>,
  lock: Server,
  events: EmbeddedRedisEvents,
): Promise<EmbeddedRedis> {
  const orphan = await ping(socket);
  if (orphan) {
    // We hold the lock, so the server that started this redis-server is gone.
    await orphan.shutdown().catch(() => undefined);
    orphan.disconnect();
    await until(async () => !(await answers()), STOP_TIMEOUT_MS, "the redis-server left by an earlier run did not stop");
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
    joined: false,
    ownerPid: process.pid,
    stop: async () => {
      stopping = true;
      if (!current.dead) {
        current.child.kill("SIGTERM");
        const timer = setTimeout(() => current.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
        await current.exited;
        clearTimeout(timer);
      }
      lock.close();
    },
  };
}
