// Proves durability under real faults: a kill -9 of redis-server (AOF, fsync always) under write load loses no acknowledged write and applies none twice, while Redis is down health and /ready say so and operations get UNAVAILABLE, a Redis restarted empty or flushed is refused with UNAVAILABLE on every instance until an admin re-initialises (also when a new instance gave the flushed keyspace a fresh epoch, while instances starting together on an empty Redis agree on one), and a SIGTERM under load completes in-flight mutations, exits once they are answered and ends subscribers resumably.
import { randomUUID } from "node:crypto";
import { print } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { Redis } from "ioredis";
import { afterEach, expect, test } from "vitest";
import {
  AllocateDocument,
  ContextChangesDocument,
  CreateContextDocument,
  GetContextDocument,
  GetLedgerDocument,
  PatchContextHeadDocument,
  ReleaseDocument,
} from "../gql/graphql.js";
import { createLogger, type Logger } from "../../src/observability/logger.js";
import { startTestServer, type GraphQLResponse, type TestServer } from "../helpers/app.js";
import { Backoff } from "../helpers/backoff.js";
import { range, resumeAfterShutdown, seqsOf, subscribe, TRANSPORTS } from "../helpers/feed-client.js";
import { testKeys } from "../helpers/keys.js";
import { ledgerViolations } from "../../support/ledger-invariant.js";
import { startRedisServer, type RedisServer } from "../../support/redis-server.js";
import { spawnServer } from "../helpers/server-process.js";

/** What each test started, stopped after it in reverse order whatever its outcome. */
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  const failures: unknown[] = [];
  for (const cleanup of cleanups.splice(0).reverse()) await Promise.resolve().then(cleanup).catch((err: unknown) => failures.push(err));
  if (failures.length) throw failures[0];
});

async function ownRedis(extraArgs: readonly string[] = []): Promise<RedisServer> {
  const redis = await startRedisServer(extraArgs);
  cleanups.push(() => redis.stop());
  return redis;
}

async function server(overrides: Parameters<typeof startTestServer>[0], log?: Logger): Promise<TestServer> {
  const started = await startTestServer(overrides, log);
  cleanups.push(() => started.close());
  return started;
}

function client(url: string): Redis {
  const redis = new Redis(url);
  redis.on("error", () => undefined); // it reconnects across the kills
  cleanups.push(() => redis.disconnect());
  return redis;
}

type Document<T, V> = TypedDocumentNode<T, V> | string;

/** POSTs an operation (with `authorization` when given) and returns the HTTP status and the parsed body. */
async function call<T = any, V = Record<string, unknown>>(
  url: string,
  document: Document<T, V>,
  variables?: V,
  authorization?: string,
): Promise<{ status: number; body: GraphQLResponse<T> }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
    body: JSON.stringify({ query: typeof document === "string" ? document : print(document), variables }),
  });
  return { status: res.status, body: (await res.json()) as GraphQLResponse<T> };
}

const codeOf = (body: GraphQLResponse<unknown>) => body.errors?.[0]?.extensions?.code;
const HEALTH = "{ health { ok state redisReachable } }";
const stateOf = async (url: string, authorization?: string) => (await call(url, HEALTH, undefined, authorization)).body.data?.health.state as string | undefined;
const statusOf = async (url: string, path: "/ready" | "/health") => (await fetch(new URL(path, url))).status;
/** /ready's status, or a rejection if it takes more than a second (a probe's patience). */
const readyStatus = async (url: string) => (await fetch(new URL("/ready", url), { signal: AbortSignal.timeout(1_000) })).status;

/** Polls `probe` (backing off from 1 to 20 ms between polls) until it returns true; rejects after `timeoutMs`. Resolves to the ms it took. */
async function pollUntil(probe: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<number> {
  const started = performance.now();
  const backoff = new Backoff(1, 20);
  for (;;) {
    if (await probe().catch(() => false)) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await backoff.wait();
  }
}

/** Lets code wait for a condition on counters that other async code updates (an event, not a sleep). */
class Progress {
  private readonly waiters = new Set<() => void>();
  notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
  until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const test = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters.delete(test);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(test);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(test);
      test();
    });
  }
}

/** An instance's state changes, from its "redis state" log lines, to wait on what a check concluded. */
function stateChanges() {
  const seen: string[] = [];
  const progress = new Progress();
  const log = createLogger("info", (line) => {
    const entry = JSON.parse(line) as { msg: string; state?: string };
    if (entry.msg !== "redis state") return;
    seen.push(entry.state!);
    progress.notify();
  });
  /** What the first check after a reconnect that began at or after `seen[from]` concluded ("intact" or "lost"). */
  const afterReconnect = async (from: number): Promise<string> => {
    const conclusion = () => {
      const dropped = seen.indexOf("unverified", from);
      return dropped < 0 ? undefined : seen.slice(dropped + 1).find((state) => state !== "unverified");
    };
    await progress.until(() => conclusion() !== undefined, "a reconnect and its check");
    return conclusion()!;
  };
  return { log, seen, afterReconnect };
}

const REINITIALIZE = "mutation($confirm: String!) { reinitialize(confirm: $confirm) }";
const add = (path: string, value: unknown) => [{ op: "add" as const, path, value }];
const credits = (amount: number) => [{ kind: "credits", amount }];

test("kill -9 of redis-server (appendfsync always) under write load: no acknowledged write lost, none applied twice, the ledger sound, served again", async () => {
  const redis = await ownRedis(["--appendonly", "yes", "--appendfsync", "always"]);
  const app = await server({ redisUrl: redis.url, stateCheckMs: 100 });
  const admin = client(redis.url);
  const prefix = app.config.keyPrefix;
  await app.data(CreateContextDocument, { id: "acks", document: { acks: {} } });
  await app.data(CreateContextDocument, { id: "budget", document: { resources: { limits: { credits: 1_000_000 } } } });
  const epoch = await admin.get(`${prefix}:epoch`);
  expect(epoch).toMatch(/^[0-9a-f-]{36}$/);

  const WRITERS = 8;
  const USAGE = 3;
  const progress = new Progress();
  const acked: string[] = []; // patch opIds answered with data, in order
  const allocations: string[] = []; // allocation ids whose allocate and release were answered with data
  const refusals = new Map<string, number>(); // error code (or "network") -> count, while retrying
  let stop = false;
  let killedAt = Infinity;
  let restartedAt = Infinity;
  let firstAckAfterRestart = Infinity;
  const deadline = () => performance.now() + 25_000;

  /** Sends until the server answers with data, the same opId every time, until the deadline. */
  const untilApplied = async <T>(what: string, send: () => Promise<GraphQLResponse<T>>): Promise<T> => {
    const until = deadline();
    const backoff = new Backoff(1, 20);
    for (;;) {
      let code: string;
      try {
        const res = await send();
        if (res.data && !res.errors) return res.data;
        code = String(codeOf(res));
      } catch {
        code = "network";
      }
      refusals.set(code, (refusals.get(code) ?? 0) + 1);
      if (performance.now() > until) throw new Error(`${what} was not applied before the deadline (last: ${code})`);
      await backoff.wait();
    }
  };
  let acrossTheOutage = 0; // patches sent before the kill and acknowledged after the restart
  const writer = async (w: number) => {
    for (let n = 0; !stop; n++) {
      const opId = `w${w}-${n}`;
      const sentAt = performance.now();
      await untilApplied(opId, () => app.request(PatchContextHeadDocument, { id: "acks", patch: add(`/acks/${opId}`, true), opId }));
      if (sentAt < killedAt && performance.now() > restartedAt) acrossTheOutage++;
      acked.push(opId);
      if (performance.now() > restartedAt) firstAckAfterRestart = Math.min(firstAckAfterRestart, performance.now());
      progress.notify();
      if (n % 4 === 3) {
        const { allocate } = await untilApplied(`a-${opId}`, () =>
          app.request(AllocateDocument, { contextId: "budget", request: credits(10), mode: "EXACT", opId: `a-${opId}` }),
        );
        await untilApplied(`r-${opId}`, () => app.request(ReleaseDocument, { allocationId: allocate.id, usage: credits(USAGE), opId: `r-${opId}` }));
        allocations.push(allocate.id);
      }
    }
  };
  const writers = Promise.all(range(1, WRITERS).map(writer));

  await progress.until(() => acked.length >= 300, "300 acknowledged writes");
  killedAt = performance.now();
  await redis.kill();
  const ackedBeforeKill = new Set(acked);
  // Down until a write has been refused (after the 2 s verification bound): meanwhile writers
  // either get UNAVAILABLE too and retry with their opIds, or wait in the Redis client's queue
  // to be resent after the reconnect.
  await pollUntil(async () => (await readyStatus(app.url)) === 503, "/ready 503 while redis-server is down");
  const sendWhileDown = () => app.request(PatchContextHeadDocument, { id: "acks", patch: add("/acks/while-down", true), opId: "while-down" });
  expect(codeOf(await sendWhileDown())).toBe("UNAVAILABLE");
  await redis.restart();
  restartedAt = performance.now();
  // Refused, so not applied: retried with its opId, it is applied once.
  await untilApplied("while-down", sendWhileDown);
  firstAckAfterRestart = Math.min(firstAckAfterRestart, performance.now());
  acked.push("while-down");
  await progress.until(() => acked.length >= ackedBeforeKill.size + 200, "200 writes acknowledged after the restart");
  stop = true;
  await writers;

  const final = (await app.data(GetContextDocument, { id: "acks" })).context!;
  const keys = Object.keys((final.document as { acks: Record<string, boolean> }).acks);
  expect([...ackedBeforeKill].filter((opId) => !keys.includes(opId)), "acknowledged before the kill, then lost").toEqual([]);
  expect(keys.sort()).toEqual([...acked].sort());
  // Every write was retried until acknowledged: one version each, so none was applied twice.
  expect(final.version).toBe(acked.length + 1);
  expect(final.seq).toBe(final.version);

  expect(await ledgerViolations(admin, prefix, "budget")).toEqual([]);
  const ledger = (await app.data(GetLedgerDocument, { id: "budget" })).context!;
  expect(ledger.allocations.edges.map(({ node: a }) => a).map((a) => a.id).sort()).toEqual([...allocations].sort());
  expect(ledger.allocations.edges.map(({ node: a }) => a).every((a) => a.status === "RELEASED")).toBe(true);
  expect(ledger.budget.consumed).toEqual(credits(USAGE * allocations.length));
  expect(ledger.budget.available).toEqual(credits(1_000_000 - USAGE * allocations.length));

  // The epoch came back from the AOF: the same deployment, served without an admin.
  expect(await admin.get(`${prefix}:epoch`)).toBe(epoch);
  expect(await stateOf(app.url)).toBe("INTACT");
  expect(await statusOf(app.url, "/ready")).toBe(200);
  expect([...refusals.keys()].filter((code) => code !== "UNAVAILABLE" && code !== "network"), JSON.stringify([...refusals])).toEqual([]);
  console.info(
    `kill -9: ${ackedBeforeKill.size} writes acknowledged before the kill, ${acrossTheOutage} sent before it and acknowledged after the restart, ${acked.length} in all, ${allocations.length} allocate+release pairs; ` +
      `served again ${Math.round(firstAckAfterRestart - restartedAt)} ms after the restart (${Math.round(firstAckAfterRestart - killedAt)} ms after the kill); retries by outcome ${JSON.stringify(Object.fromEntries(refusals))}`,
  );
});

test("while redis-server is down, /ready is 503, health answers UNVERIFIED and unreachable, operations get UNAVAILABLE; back up, it serves", async () => {
  const redis = await ownRedis(["--appendonly", "yes", "--appendfsync", "always"]);
  const app = await server({ redisUrl: redis.url, stateCheckMs: 100 });
  const id = "down";
  await app.data(CreateContextDocument, { id, document: { n: 1 } });
  await redis.kill();
  await pollUntil(async () => (await readyStatus(app.url)) === 503, "/ready 503");
  const started = performance.now();
  const [health, read, patch] = await Promise.all([
    // A probe waits a few seconds at most: health must answer within the bound operations get (2 s).
    fetch(app.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: HEALTH }),
      signal: AbortSignal.timeout(3_000),
    }).then(
      async (res) => ({ answer: (await res.json()) as unknown, ms: Math.round(performance.now() - started) }),
      (err: unknown) => ({ answer: `no answer: ${String(err)}`, ms: Math.round(performance.now() - started) }),
    ),
    app.request(GetContextDocument, { id }),
    app.request(PatchContextHeadDocument, { id, patch: add("/n", 2) }),
  ]);
  const liveness = await statusOf(app.url, "/health");

  await redis.restart();
  await pollUntil(async () => (await readyStatus(app.url)) === 200, "/ready 200 after the restart");
  expect((await app.data(GetContextDocument, { id })).context).toMatchObject({ version: 1, document: { n: 1 } });
  // Asserted once Redis is back, so that a failure here leaves nothing waiting on it.
  expect(codeOf(read)).toBe("UNAVAILABLE");
  expect(codeOf(patch)).toBe("UNAVAILABLE");
  expect(liveness).toBe(200);
  expect(health.answer, `health answered after ${health.ms} ms`).toEqual({ data: { health: { ok: false, state: "UNVERIFIED", redisReachable: false } } });
});

test("Redis restarted empty: every operation on every instance is UNAVAILABLE and writes nothing, until an admin re-initialises", async () => {
  const redis = await ownRedis();
  const keys = testKeys("in-");
  const a = await server({ redisUrl: redis.url, keys: keys.ring, stateCheckMs: 100 });
  const prefix = a.config.keyPrefix;
  const { admin, agent, viewer } = keys;
  const id = "in-lost";
  const ok = async <T, V>(url: string, document: Document<T, V>, variables: V, authorization: string) => {
    const { body } = await call(url, document, variables, authorization);
    expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
    return body.data!;
  };
  await ok(a.url, CreateContextDocument, { id, document: { resources: { limits: { credits: 100 } } } }, admin.authorization);
  await ok(a.url, AllocateDocument, { contextId: id, request: credits(10), mode: "EXACT" }, agent.authorization);
  expect(await stateOf(a.url, viewer.authorization)).toBe("INTACT");

  await redis.restart(); // kill -9 and a new, empty redis-server on the same port
  const lostAfterMs = await pollUntil(async () => (await stateOf(a.url, viewer.authorization)) === "LOST", "health.state LOST");

  const redisKeys = client(redis.url);
  const onlyTheLostMark = async () => {
    expect(await redisKeys.keys("*")).toEqual([`${prefix}:epoch`]);
    expect(await redisKeys.get(`${prefix}:epoch`)).toBe("lost");
  };
  await onlyTheLostMark();

  /** Every kind of operation, each expected to be refused with UNAVAILABLE. */
  const everyOperation = async (url: string) => {
    const refused: Record<string, unknown> = {
      context: codeOf((await call(url, GetContextDocument, { id }, viewer.authorization)).body),
      patchContext: codeOf((await call(url, PatchContextHeadDocument, { id, patch: add("/x", 1) }, agent.authorization)).body),
      allocate: codeOf((await call(url, AllocateDocument, { contextId: id, request: credits(1), mode: "EXACT" }, agent.authorization)).body),
      createContext: codeOf((await call(url, CreateContextDocument, { id: "in-new", document: { resources: { limits: { credits: 5 } } } }, admin.authorization)).body),
    };
    for (const transport of TRANSPORTS) {
      const feed = subscribe(transport, url, ContextChangesDocument, { contextIds: [id], after: [{ contextId: id, seq: 1 }] }, { authorization: viewer.authorization });
      await feed.untilEnded();
      refused[`contextChanges (${transport})`] = feed.errors[0]?.extensions?.code;
      expect(feed.values).toEqual([]);
    }
    return refused;
  };
  const allUnavailable = {
    context: "UNAVAILABLE",
    patchContext: "UNAVAILABLE",
    allocate: "UNAVAILABLE",
    createContext: "UNAVAILABLE",
    "contextChanges (ws)": "UNAVAILABLE",
    "contextChanges (sse)": "UNAVAILABLE",
  };
  expect(await everyOperation(a.url)).toEqual(allUnavailable);
  await onlyTheLostMark();
  expect(await statusOf(a.url, "/ready")).toBe(503);
  expect(await statusOf(a.url, "/health")).toBe(200);

  // An instance started now must not take the empty keyspace for a new deployment.
  const b = await server({ redisUrl: redis.url, keys: keys.ring, stateCheckMs: 100, keyPrefix: prefix });
  expect(await stateOf(b.url, viewer.authorization)).toBe("LOST");
  expect(await everyOperation(b.url)).toEqual(allUnavailable);
  expect(await statusOf(b.url, "/ready")).toBe(503);
  await onlyTheLostMark();

  expect(codeOf((await call(a.url, REINITIALIZE, { confirm: "the state is lost" }, agent.authorization)).body)).toBe("FORBIDDEN");
  expect(codeOf((await call(a.url, REINITIALIZE, { confirm: "the state is lost" }, viewer.authorization)).body)).toBe("FORBIDDEN");
  expect(codeOf((await call(a.url, REINITIALIZE, { confirm: "yes" }, admin.authorization)).body)).toBe("VALIDATION_FAILED");
  await onlyTheLostMark();

  const reinitialized = await call(a.url, REINITIALIZE, { confirm: "the state is lost" }, admin.authorization);
  expect(reinitialized.body).toEqual({ data: { reinitialize: "INTACT" } });
  const reinitializedAt = performance.now();
  const bServesAfterMs = await pollUntil(async () => (await stateOf(b.url, viewer.authorization)) === "INTACT", "instance b INTACT", 5_000);
  // Marked as an admin's re-initialisation: the epoch every instance adopts (see the next test).
  expect(await redisKeys.get(`${prefix}:epoch`)).toMatch(/^reinitialized:[0-9a-f-]{36}$/);

  // What was lost stays lost; both instances serve new state.
  expect(await ok(a.url, GetContextDocument, { id }, viewer.authorization)).toEqual({ context: null });
  for (const [name, instance] of [["a", a], ["b", b]] as const) {
    const created = `in-after-${name}`;
    await ok(instance.url, CreateContextDocument, { id: created, document: { resources: { limits: { credits: 100 } } } }, admin.authorization);
    const { allocate } = await ok(instance.url, AllocateDocument, { contextId: created, request: credits(10), mode: "EXACT" }, agent.authorization);
    expect(allocate.granted).toEqual(credits(10));
    expect(await statusOf(instance.url, "/ready")).toBe(200);
  }
  console.info(
    `restarted empty: LOST seen ${Math.round(lostAfterMs)} ms after the restart; the second instance served ${Math.round(bServesAfterMs)} ms after reinitialize ` +
      `(stateCheckMs 100; ${Math.round(performance.now() - reinitializedAt)} ms until both had created and allocated)`,
  );
});

test("FLUSHALL without a restart: the server refuses with UNAVAILABLE rather than serve the blank keyspace", async () => {
  const redis = await ownRedis();
  const app = await server({ redisUrl: redis.url, stateCheckMs: 100 });
  const prefix = app.config.keyPrefix;
  const id = "flushed";
  await app.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 100 } } } });
  await app.data(AllocateDocument, { contextId: id, request: credits(10), mode: "EXACT" });

  const flusher = client(redis.url);
  expect(await flusher.flushall()).toBe("OK");
  const lostAfterMs = await pollUntil(async () => (await stateOf(app.url)) === "LOST", "health.state LOST", 5_000);
  expect(await statusOf(app.url, "/ready")).toBe(503);
  expect(codeOf(await app.request(GetContextDocument, { id }))).toBe("UNAVAILABLE");
  expect(codeOf(await app.request(PatchContextHeadDocument, { id, patch: add("/x", 1) }))).toBe("UNAVAILABLE");
  expect(codeOf(await app.request(AllocateDocument, { contextId: id, request: credits(1), mode: "EXACT" }))).toBe("UNAVAILABLE");
  expect(codeOf(await app.request(CreateContextDocument, { id, document: { resources: { limits: { credits: 100 } } } }))).toBe("UNAVAILABLE");
  expect(await flusher.keys("*")).toEqual([`${prefix}:epoch`]);
  expect(await flusher.get(`${prefix}:epoch`)).toBe("lost");
  console.info(`FLUSHALL: LOST seen ${Math.round(lostAfterMs)} ms after the flush (stateCheckMs 100)`);
});

test("FLUSHALL, then a new instance initialises the blank keyspace: the instance that verified the old epoch calls the new one lost, so the new instance refuses too, until an admin re-initialises", async () => {
  const redis = await ownRedis();
  const admin = client(redis.url);
  const prefix = `flushed-${randomUUID()}`;
  const epochKey = `${prefix}:epoch`;
  const aStates = stateChanges();
  // A checks only at start and after reconnects: B initialises the flushed keyspace before A looks.
  const a = await server({ redisUrl: redis.url, keyPrefix: prefix, stateCheckMs: 3_600_000 }, aStates.log);
  await a.data(CreateContextDocument, { id: "before", document: { n: 1 } });
  const epoch = await admin.get(epochKey);
  expect(await admin.flushall()).toBe("OK");
  const b = await server({ redisUrl: redis.url, keyPrefix: prefix, stateCheckMs: 100 });
  const fresh = await admin.get(epochKey);
  expect(fresh).toMatch(/^[0-9a-f-]{36}$/);
  expect(fresh).not.toBe(epoch);
  expect(await stateOf(b.url)).toBe("INTACT");
  // B's heartbeat (serverInstances), written while B found the keyspace intact: the only keys
  // besides the epoch that may be there once the loss is seen, and not written again after it.
  const heartbeatKeys = (await admin.keys(`${prefix}:{instances}*`)).sort();
  expect(heartbeatKeys).toHaveLength(2);
  const indexKey = `${prefix}:{instances}`;
  const beats = async () => [await admin.zrange(indexKey, 0, -1, "WITHSCORES"), ...(await Promise.all(heartbeatKeys.filter((key) => key !== indexKey).map((key) => admin.hgetall(key))))];
  const beatsBefore = await beats();

  // Every connection drops (the admin's own is skipped): A checks the epoch on its reconnect.
  let from = aStates.seen.length;
  await admin.client("KILL", "TYPE", "normal");
  expect(await aStates.afterReconnect(from), "A's conclusion on finding an epoch it never verified").toBe("lost");
  const bLostAfterMs = await pollUntil(async () => (await stateOf(b.url)) === "LOST", "B's health.state LOST", 5_000);
  expect(await admin.get(epochKey)).toBe("lost");
  for (const instance of [a, b]) {
    expect(codeOf(await instance.request(GetContextDocument, { id: "before" }))).toBe("UNAVAILABLE");
    expect(codeOf(await instance.request(CreateContextDocument, { id: "blank", document: {} }))).toBe("UNAVAILABLE");
    expect(await statusOf(instance.url, "/ready")).toBe(503);
  }
  expect((await admin.keys("*")).sort()).toEqual([epochKey, ...heartbeatKeys].sort());
  expect(await beats()).toEqual(beatsBefore);

  // Re-initialised on B, the instance that started on the blank keyspace: A adopts the new epoch.
  expect((await call(b.url, REINITIALIZE, { confirm: "the state is lost" })).body).toEqual({ data: { reinitialize: "INTACT" } });
  from = aStates.seen.length;
  await admin.client("KILL", "TYPE", "normal"); // A's next check, its period being an hour
  expect(await aStates.afterReconnect(from), "A's conclusion on finding the re-initialised epoch").toBe("intact");
  await pollUntil(async () => (await stateOf(b.url)) === "INTACT", "B's health.state INTACT", 5_000);
  expect(await a.data(GetContextDocument, { id: "before" })).toEqual({ context: null });
  await a.data(CreateContextDocument, { id: "after", document: { n: 2 } });
  expect((await b.data(GetContextDocument, { id: "after" })).context).toMatchObject({ version: 1, document: { n: 2 } });
  console.info(`FLUSHALL then a new instance: the new instance refused ${Math.round(bLostAfterMs)} ms after the other's reconnect check marked the state lost (stateCheckMs 100)`);
});

test("two instances starting together on an empty Redis agree on one epoch and keep it across reconnects", async () => {
  const redis = await ownRedis();
  const admin = client(redis.url);
  const prefix = `together-${randomUUID()}`;
  const states = [stateChanges(), stateChanges()];
  const [a, b] = await Promise.all(states.map((s) => server({ redisUrl: redis.url, keyPrefix: prefix, stateCheckMs: 100 }, s.log)));
  const epoch = await admin.get(`${prefix}:epoch`);
  expect(epoch).toMatch(/^[0-9a-f-]{36}$/);
  const from = states.map((s) => s.seen.length);
  await admin.client("KILL", "TYPE", "normal");
  for (const [i, s] of states.entries()) expect(await s.afterReconnect(from[i]!)).toBe("intact");
  expect(await admin.get(`${prefix}:epoch`)).toBe(epoch);
  await a!.data(CreateContextDocument, { id: "shared", document: { n: 1 } });
  expect((await b!.data(GetContextDocument, { id: "shared" })).context).toMatchObject({ version: 1, document: { n: 1 } });
});

type Outcome = "data" | "errors" | "truncated" | "network";

test("SIGTERM under load: in-flight mutations complete, every answer is whole, nothing applies twice, subscribers end resumably, exit 0", async () => {
  const GRACE_MS = 3_000;
  const redis = await ownRedis();
  const prefix = `sigterm-${randomUUID()}`;
  const survivor = await server({ redisUrl: redis.url, keyPrefix: prefix });
  const id = "sigterm";
  await survivor.data(CreateContextDocument, { id, document: { acks: {} } });

  const doomed = spawnServer(["--port", "0", "--key-prefix", prefix], { ...process.env, REDIS_URL: redis.url, SWARM_SHUTDOWN_GRACE_MS: String(GRACE_MS) });
  cleanups.push(() => {
    if (doomed.child.exitCode === null && doomed.child.signalCode === null) doomed.child.kill("SIGKILL");
  });
  const url = await doomed.url;
  const feeds = TRANSPORTS.map((transport) => subscribe(transport, url, ContextChangesDocument, { contextIds: [id], after: [{ contextId: id, seq: 1 }] }));
  cleanups.push(() => feeds.forEach((feed) => feed.close()));
  const opIds = ["warmup"];
  await survivor.data(PatchContextHeadDocument, { id, patch: add("/acks/warmup", true), opId: "warmup" });
  for (const feed of feeds) await feed.until((f) => seqsOf(f).includes(2), "the warm-up change");

  interface Sent {
    readonly opId: string;
    readonly startedAt: number;
    settledAt: number;
    outcome?: Outcome;
    detail?: string;
    version?: number;
  }
  const sent: Sent[] = [];
  const progress = new Progress();
  let terminatedAt = Infinity;
  const QUERY = print(PatchContextHeadDocument);
  const send = async (request: Sent) => {
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: QUERY, variables: { id, patch: add(`/acks/${request.opId}`, true), opId: request.opId } }),
      });
    } catch (err) {
      request.outcome = "network";
      request.detail = String((err as { cause?: { code?: string; message?: string } }).cause?.code ?? (err as { cause?: Error }).cause?.message ?? err);
      return;
    }
    let text = "";
    try {
      text = await res.text();
      const body = JSON.parse(text) as GraphQLResponse<{ patchContext: { version: number } }>;
      request.outcome = body.data && !body.errors ? "data" : "errors";
      request.version = body.data?.patchContext.version;
      if (request.outcome === "errors") request.detail = `${res.status} ${JSON.stringify(body.errors)}`;
    } catch (err) {
      request.outcome = "truncated";
      request.detail = `${res.status} ${String(err)}: ${text.slice(0, 200)}`;
    }
  };
  const writer = async (w: number) => {
    // Until the server stops answering: a failed connection ends this writer.
    for (let n = 0; ; n++) {
      const request: Sent = { opId: `s${w}-${n}`, startedAt: performance.now(), settledAt: Infinity };
      sent.push(request);
      await send(request);
      request.settledAt = performance.now();
      progress.notify();
      if (request.outcome === "network") return;
    }
  };
  const writers = Promise.all(range(1, 8).map(writer));

  await progress.until(() => sent.filter((r) => r.outcome === "data").length >= 100, "100 acknowledged writes");
  const inFlightAtTerm = sent.filter((r) => r.outcome === undefined).length;
  terminatedAt = performance.now();
  doomed.child.kill("SIGTERM");
  const exitCode = await doomed.exited;
  const exitMs = performance.now() - terminatedAt;
  await writers;

  expect(exitCode).toBe(0);
  expect(exitMs).toBeLessThan(GRACE_MS + 2_000);
  const by = (outcome: Outcome) => sent.filter((r) => r.outcome === outcome);
  expect(inFlightAtTerm).toBeGreaterThan(0);
  // Requests the server had when SIGTERM came are answered, with data.
  const straddling = sent.filter((r) => r.startedAt < terminatedAt && r.settledAt > terminatedAt);
  expect(straddling.filter((r) => r.outcome === "data").length).toBeGreaterThan(0);
  expect(by("truncated").map((r) => r.detail)).toEqual([]);
  expect(by("errors").map((r) => r.detail)).toEqual([]);
  for (const r of by("network")) expect(r.detail).toMatch(/ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET|socket hang up|other side closed/);

  // Each answered write was applied once; a write the network lost was applied once or not at all:
  // retried with its opId on the surviving instance, each ends up applied exactly once.
  const before = ((await survivor.data(GetContextDocument, { id })).context!.document as { acks: Record<string, boolean> }).acks;
  for (const r of by("data")) expect(before[r.opId], r.opId).toBe(true);
  const lostButApplied = by("network").filter((r) => before[r.opId]).length;
  for (const r of by("network")) await survivor.data(PatchContextHeadDocument, { id, patch: add(`/acks/${r.opId}`, true), opId: r.opId });
  opIds.push(...by("data").map((r) => r.opId), ...by("network").map((r) => r.opId));
  const final = (await survivor.data(GetContextDocument, { id })).context!;
  expect(Object.keys((final.document as { acks: Record<string, boolean> }).acks).sort()).toEqual([...opIds].sort());
  expect(final.version).toBe(opIds.length + 1);
  const versions = by("data").map((r) => r.version);
  expect(new Set(versions).size).toBe(versions.length);

  for (const [i, feed] of feeds.entries()) {
    expect(await resumeAfterShutdown(feed, TRANSPORTS[i]!, survivor.url, id, final.seq), TRANSPORTS[i]).toEqual(range(2, final.seq));
  }
  const servedLate = by("data").filter((r) => r.startedAt > terminatedAt + 100).length;
  console.info(
    `SIGTERM: ${sent.length} requests, ${by("data").length} answered with data (${straddling.filter((r) => r.outcome === "data").length} of the ${straddling.length} in flight at SIGTERM, ` +
      `${servedLate} sent more than 100 ms after it), ${by("network").length} lost to the network (${lostButApplied} of them applied), exit 0 after ${Math.round(exitMs)} ms (grace ${GRACE_MS} ms); ` +
      `subscribers ended at seqs ${feeds.map((f) => seqsOf(f).at(-1)).join(", ")} of ${final.seq}`,
  );
  // Draining means: requests already taken are answered, and the process leaves as soon as they
  // are (these take milliseconds), not when the grace runs out and cuts whatever is then running.
  // A write the network lost was then never applied: its connection closed before it was read.
  expect(exitMs, "exit once in-flight requests are answered, before the grace runs out").toBeLessThan(GRACE_MS);
  expect(lostButApplied, "writes applied whose answer the shutdown cut off").toBe(0);
});
