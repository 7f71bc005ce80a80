// Proves the embedded default: the real server process keeps its data across a clean restart and across a kill -9 (shutting down the redis-server it left behind), restarts its redis-server when that is killed under write load without losing an acknowledged write, lets a second server on the same data directory join its redis-server instead of taking it (one redis-server per directory, even when two start at once; an orphan is taken over only once its owner is gone), and exits with one clear sentence when its Redis cannot be reached.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, expect, test } from "vitest";
import { freePort } from "../../support/redis-server.js";
import { spawnServer } from "../helpers/server-process.js";

const dataDir = mkdtempSync(path.join(tmpdir(), "swarm-embedded-"));
const otherDirs: string[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
  }
});
afterAll(() => {
  for (const dir of [dataDir, ...otherDirs]) rmSync(dir, { recursive: true, force: true });
});

function serverEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!("REDIS_URL" in extra)) delete env.REDIS_URL;
  return env;
}

/** Starts `src/main.ts` on the embedded redis-server of `dir` and resolves once it listens. */
async function startServer(dir = dataDir): Promise<{ child: ChildProcess; url: string; logs: Record<string, unknown>[] }> {
  const server = spawnServer(["--port", "0", "--data-dir", dir], serverEnv());
  children.push(server.child);
  return { child: server.child, url: await server.url, logs: server.logs };
}

async function gql(url: string, query: string, variables?: unknown) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data?: Record<string, any>; errors?: unknown[] };
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((r) => child.once("exit", (code) => r(code)));
}

function redisPid(dir = dataDir): number {
  return Number(readFileSync(path.join(dir, "redis.pid"), "utf8").trim());
}

/** The pids of the redis-server processes serving `dir`'s socket (redis-server shows it in its title). */
function redisServersOf(dir: string): number[] {
  const title = `redis-server unixsocket:${path.join(dir, "redis.sock")}`;
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith(title);
      } catch {
        return false; // it exited meanwhile
      }
    })
    .map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntilDead(pid: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (alive(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} is still alive`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("a context survives a clean restart, and the embedded redis-server stops with the server", async () => {
  const first = await startServer();
  const created = await gql(first.url, 'mutation($d: JSON!) { createContext(id: "persist-1", document: $d) { version } }', {
    d: { blackboard: { note: "keep me" } },
  });
  expect(created.data?.createContext.version).toBe(1);
  const patched = await gql(first.url, 'mutation { patchContext(id: "persist-1", patch: [{op: add, path: "/n", value: 2}]) { version } }');
  expect(patched.data?.patchContext.version).toBe(2);
  const pid = redisPid();
  first.child.kill("SIGTERM");
  expect(await exitOf(first.child)).toBe(0);
  await waitUntilDead(pid);

  const second = await startServer();
  const read = await gql(second.url, '{ context(id: "persist-1") { version document } }');
  expect(read.data?.context).toEqual({ version: 2, document: { blackboard: { note: "keep me" }, n: 2 } });
});

test("after kill -9 the next start shuts the orphaned redis-server down and finds the data", async () => {
  const first = await startServer();
  await gql(first.url, 'mutation { createContext(id: "persist-2", document: {a: 1}) { version } }');
  const orphan = redisPid();
  first.child.kill("SIGKILL");
  await exitOf(first.child);
  expect(alive(orphan)).toBe(true);

  const second = await startServer();
  await waitUntilDead(orphan);
  expect(redisPid()).not.toBe(orphan);
  const read = await gql(second.url, '{ context(id: "persist-2") { version document } }');
  expect(read.data?.context).toEqual({ version: 1, document: { a: 1 } });
});

test("a second server on the same data directory joins the running embedded redis-server: it takes nothing from the first, and stopping it leaves that redis-server running", async () => {
  const first = await startServer();
  await gql(first.url, 'mutation { createContext(id: "joined-1", document: {from: "first"}) { version } }');
  const owned = redisPid();

  const second = await startServer();
  expect(redisServersOf(dataDir), "redis-server processes on the data directory").toEqual([owned]);
  expect(second.logs.find((l) => l.msg === "embedded redis-server")).toMatchObject({ joined: true, ownerPid: first.child.pid });
  expect((await gql(second.url, '{ context(id: "joined-1") { document } }')).data?.context).toEqual({ document: { from: "first" } });
  await gql(second.url, 'mutation { createContext(id: "joined-2", document: {from: "second"}) { version } }');
  expect((await gql(first.url, '{ context(id: "joined-2") { document } }')).data?.context).toEqual({ document: { from: "second" } });

  second.child.kill("SIGTERM");
  expect(await exitOf(second.child)).toBe(0);
  expect(redisServersOf(dataDir)).toEqual([owned]);
  const patched = await gql(first.url, 'mutation { patchContext(id: "joined-1", patch: [{op: add, path: "/n", value: 1}]) { version } }');
  expect(patched.data?.patchContext.version).toBe(2);
  expect(first.logs.map((l) => l.msg)).not.toContain("embedded redis-server exited");
});

test("two servers starting together on a new data directory run one redis-server; after kill -9 of its owner the next start takes the orphan over and the joined server serves again", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "swarm-embedded-"));
  otherDirs.push(dir);
  const [a, b] = await Promise.all([startServer(dir), startServer(dir)]);
  const servers = redisServersOf(dir);
  expect(servers, "redis-server processes on the data directory").toEqual([redisPid(dir)]);
  const [owner, joiner] = a!.logs.some((l) => l.msg === "embedded redis-server" && l.joined === false) ? [a!, b!] : [b!, a!];
  expect(joiner.logs.find((l) => l.msg === "embedded redis-server")).toMatchObject({ joined: true, ownerPid: owner.child.pid });
  await gql(joiner.url, 'mutation { createContext(id: "together", document: {a: 1}) { version } }');

  owner.child.kill("SIGKILL");
  await exitOf(owner.child);
  expect(redisServersOf(dir), "the orphan, still serving the joined server").toEqual(servers);
  const next = await startServer(dir);
  await waitUntilDead(servers[0]!);
  expect(redisServersOf(dir)).toEqual([redisPid(dir)]);
  expect(next.logs.find((l) => l.msg === "embedded redis-server")).toMatchObject({ joined: false });
  expect((await gql(next.url, '{ context(id: "together") { document } }')).data?.context).toEqual({ document: { a: 1 } });
  // The joined server's Redis client reconnects to the new redis-server on the same socket.
  for (const deadline = Date.now() + 20_000; ; ) {
    const read = await gql(joiner.url, '{ context(id: "together") { version } }');
    if (read.data?.context) break;
    expect(read.errors?.map((e) => (e as { extensions?: { code?: unknown } }).extensions?.code)).toEqual(["UNAVAILABLE"]);
    if (Date.now() > deadline) throw new Error("the joined server did not serve again");
  }
});

test("an unreachable REDIS_URL exits non-zero with one sentence naming REDIS_URL", async () => {
  const port = await freePort();
  const server = spawnServer(["--port", "0"], serverEnv({ REDIS_URL: `redis://127.0.0.1:${port}` }));
  children.push(server.child);
  expect(await server.exited).toBe(1);
  const lines = server.stderr().trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^swarm-context: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ .*REDIS_URL/);
});

test("kill -9 of the embedded redis-server under write load: the server restarts it on its AOF; no acknowledged write is lost, none applied twice", async () => {
  const server = await startServer();
  const id = "killed-redis";
  await gql(server.url, `mutation { createContext(id: "${id}", document: {acks: {}}) { version } }`);
  const WRITERS = 6;
  const WRITES = 40;
  let acknowledged = 0;
  let killedAt = -1;
  const refusals = new Set<unknown>();
  const before = redisPid();
  /** Sends one write until it is acknowledged, always with the same opId, so a retry never applies it twice. */
  const write = async (name: string) => {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
      const res = await gql(
        server.url,
        `mutation { patchContext(id: "${id}", opId: "${name}", patch: [{op: add, path: "/acks/${name}", value: true}]) { version } }`,
      ).catch(() => ({ data: undefined, errors: ["no response"] }));
      if (res.data?.patchContext) return;
      for (const e of res.errors ?? []) refusals.add((e as { extensions?: { code?: unknown } }).extensions?.code ?? e);
    }
    throw new Error(`write ${name} was never acknowledged`);
  };
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let n = 0; n < WRITES; n++) {
        await write(`w${w}-${n}`);
        if (++acknowledged === 60) {
          killedAt = acknowledged;
          process.kill(before, "SIGKILL");
        }
      }
    }),
  );
  expect(killedAt).toBe(60);
  const after = redisPid();
  expect(after).not.toBe(before);
  const read = await gql(server.url, `{ context(id: "${id}") { version document } }`);
  // Every write was acknowledged, each exactly once: one version per write, every key present.
  expect(read.data?.context.version).toBe(1 + WRITERS * WRITES);
  expect(Object.keys(read.data?.context.document.acks).length).toBe(WRITERS * WRITES);
  // While the redis-server was down, writes were refused as UNAVAILABLE, nothing else.
  expect([...refusals].filter((code) => code !== "UNAVAILABLE")).toEqual([]);
  const messages = server.logs.map((l) => l.msg);
  expect(messages).toContain("embedded redis-server exited");
  expect(messages).toContain("embedded redis-server restarted");
  expect(server.logs.find((l) => l.msg === "embedded redis-server exited")).toMatchObject({ signal: "SIGKILL", restartInMs: 100 });
});
