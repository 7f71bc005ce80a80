import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";

/** A free TCP port on loopback, as the OS hands it out. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** The running redis-server process: a new one after restart(). */
  readonly process: ChildProcess;
  /** Its data directory (`--dir`): where an AOF or RDB file goes. */
  readonly dir: string;
  /** kill -9: the process dies at once, flushing nothing; port and dir stay for restart(). Resolves once it has exited. */
  kill(): Promise<void>;
  /**
   * Starts redis-server again with the same port, dir and options (after kill()); resolves once it
   * answers PING. Without persistence options it comes back empty.
   */
  restart(): Promise<void>;
  /** kill -STOP: it answers nothing, its connections stay open, until resume(). */
  pause(): void;
  /** kill -CONT after pause(): it serves again, starting with what was sent meanwhile. */
  resume(): void;
  /** Kills it (SIGKILL) and removes its dir. */
  stop(): Promise<void>;
}

/** Waits until a Redis at `url` answers PING, for at most `timeoutMs`. */
export async function waitForRedis(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      return;
    } catch (err) {
      client.disconnect();
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Starts a private redis-server on a free loopback port, persisting nothing (DESIGN.md, Tests).
 * `extraArgs` adds redis-server options (e.g. `--appendonly yes --appendfsync always`), which
 * override the defaults.
 */
export async function startRedisServer(extraArgs: readonly string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), "swarm-redis-"));
  const url = `redis://127.0.0.1:${port}`;
  const launch = () =>
    spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extraArgs], {
      stdio: "ignore",
    });
  let child = launch();
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
  };
  await waitForRedis(url);
  return {
    url,
    port,
    dir,
    get process() {
      return child;
    },
    kill,
    pause: () => void child.kill("SIGSTOP"),
    resume: () => void child.kill("SIGCONT"),
    restart: async () => {
      await kill();
      child = launch();
      await waitForRedis(url);
    },
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
