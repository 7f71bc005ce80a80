// Proves that a stalled Redis (redis-server stopped with SIGSTOP, its connections still open) does not hang requests: past SWARM_REDIS_TIMEOUT_MS a write and a read get UNAVAILABLE (the write's outcome unknown), `health` reports Redis unreachable and the state unverified, the state guard turns unverified (logged) until Redis answers again, and a write retried with its opId after the stall returns its first outcome, applied once.
import { afterEach, expect, test } from "vitest";
import { CreateContextDocument, GetContextDocument, GetHistoryDocument, PatchContextHeadDocument } from "../gql/graphql.js";
import { createLogger, type Logger } from "../../src/observability/logger.js";
import { errorCode, startTestServer, type GraphQLResponse, type TestServer } from "../helpers/app.js";
import { startRedisServer, type RedisServer } from "../../support/redis-server.js";

/** What each test started, undone after it in reverse order whatever its outcome. */
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  const failures: unknown[] = [];
  for (const cleanup of cleanups.splice(0).reverse()) await Promise.resolve().then(cleanup).catch((err: unknown) => failures.push(err));
  if (failures.length) throw failures[0];
});

/** Short, so that a test meets it a few times in about a second, not the default's seconds. */
const REDIS_TIMEOUT_MS = 300;

async function ownRedis(): Promise<RedisServer> {
  const redis = await startRedisServer();
  cleanups.push(() => redis.stop());
  return redis;
}

async function server(overrides: Parameters<typeof startTestServer>[0], log?: Logger): Promise<TestServer> {
  const started = await startTestServer({ redisTimeoutMs: REDIS_TIMEOUT_MS, ...overrides }, log);
  cleanups.push(() => started.close());
  return started;
}

/** Stops redis-server; the test's cleanup lets it run again (before the server closes) if the test did not. */
function stall(redis: RedisServer): void {
  redis.pause();
  cleanups.push(() => redis.resume());
}

const HEALTH = "{ health { ok redisReachable redisLatencyMs state } }";

async function health(url: string): Promise<GraphQLResponse<{ health: Record<string, unknown> }>> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: HEALTH }) });
  return (await res.json()) as GraphQLResponse<{ health: Record<string, unknown> }>;
}

/** Sends until the answer has data, as a client does after UNAVAILABLE; at most `attempts` times. */
async function untilAnswered<T>(send: () => Promise<GraphQLResponse<T>>, attempts = 20): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const res = await send();
    if (res.data && !res.errors) return res.data;
    if (errorCode(res) !== "UNAVAILABLE" || attempt === attempts) throw new Error(`not answered: ${JSON.stringify(res.errors)}`);
  }
}

test("a patch and a query sent while Redis is stalled get UNAVAILABLE, health says so, and the patch retried with its opId afterwards applies once", async () => {
  const redis = await ownRedis();
  // No state check during the stall: the operations meet the timeout themselves, not the state guard.
  const app = await server({ redisUrl: redis.url, stateCheckMs: 3_600_000 });
  const id = "stalled";
  await app.data(CreateContextDocument, { id, document: { n: 0 } });
  const patch = () => app.request(PatchContextHeadDocument, { id, patch: [{ op: "replace", path: "/n", value: 1 }], opId: "patch-1" });

  stall(redis);
  const [written, read, report] = await Promise.all([patch(), app.request(GetContextDocument, { id }), health(app.url)]);
  expect(errorCode(written), JSON.stringify(written)).toBe("UNAVAILABLE");
  expect(written.errors![0]!.message).toMatch(/unknown.*same opId/);
  expect(errorCode(read), JSON.stringify(read)).toBe("UNAVAILABLE");
  expect(report.data?.health).toEqual({ ok: false, redisReachable: false, redisLatencyMs: null, state: "UNVERIFIED" });

  redis.resume();
  // The first patch reached Redis before the stall ended and ran when it did: the retry gets its outcome.
  expect((await untilAnswered(patch)).patchContext).toEqual({ version: 2, seq: 2 });
  expect((await app.data(GetContextDocument, { id })).context).toMatchObject({ version: 2, document: { n: 1 } });
  expect((await app.data(GetHistoryDocument, { id })).context!.history.map((c) => c.kind)).toEqual(["CREATED", "UPDATED"]);
  expect((await health(app.url)).data?.health).toMatchObject({ ok: true, redisReachable: true, state: "INTACT" });
});

test("while Redis does not answer its state check the guard is unverified (logged) and operations get UNAVAILABLE; once it answers, they are served", async () => {
  const states: string[] = [];
  const waiting = new Map<string, () => void>();
  const log = createLogger("info", (line) => {
    const { msg, state } = JSON.parse(line) as { msg: string; state?: string };
    if (msg !== "redis state" || state === undefined) return;
    states.push(state);
    waiting.get(state)?.();
  });
  /** Resolves once the guard has logged `state` (an event, not a sleep). */
  const logged = (state: string) => new Promise<void>((resolve) => (states.includes(state) ? resolve() : waiting.set(state, resolve)));
  const redis = await ownRedis();
  const app = await server({ redisUrl: redis.url, stateCheckMs: 50 }, log);
  await logged("intact");
  states.length = 0;

  stall(redis);
  await logged("unverified");
  expect(errorCode(await app.request(GetContextDocument, { id: "any" }))).toBe("UNAVAILABLE");
  expect((await health(app.url)).data?.health).toMatchObject({ ok: false, redisReachable: false, state: "UNVERIFIED" });

  redis.resume();
  await logged("intact");
  expect(await untilAnswered(() => app.request(GetContextDocument, { id: "any" }))).toEqual({ context: null });
});

test("shutting down while Redis is stalled ends without an error instead of waiting for Redis", async () => {
  const redis = await ownRedis();
  const started = await startTestServer({ redisUrl: redis.url, redisTimeoutMs: REDIS_TIMEOUT_MS, stateCheckMs: 3_600_000, shutdownGraceMs: 1_000 });
  await started.data(CreateContextDocument, { id: "closing", document: {} });
  stall(redis);
  // A bound for a hang, not a latency goal: close promises the grace plus about a second.
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<string>((resolve) => (timer = setTimeout(() => resolve("still closing after 15 s"), 15_000)));
  const outcome = await Promise.race([started.close().then(() => "closed", (err: Error) => `threw ${err.message}`), hung]);
  clearTimeout(timer);
  expect(outcome).toBe("closed");
});
