// Proves what operators get: /health, /ready and /metrics, one JSON log line per request with its request id (and never a key), masked faults traceable by request id, a per-key rate limit shared by instances, and open mode kept to loopback.
import { Redis } from "ioredis";
import { beforeAll, expect, test } from "vitest";
import { createApp } from "../../src/server/app.js";
import { createLogger } from "../../src/observability/logger.js";
import { AllocateDocument, ContextChangesDocument, CreateContextDocument, PatchContextHeadDocument } from "../gql/graphql.js";
import { startTestServer, testConfig, useTestServer } from "../helpers/app.js";
import { subscribe } from "../helpers/feed-client.js";
import { testKeys } from "../helpers/keys.js";

const lines: Record<string, unknown>[] = [];
const log = createLogger("info", (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
const server = useTestServer({ stateCheckMs: 50 }, log);
let origin: string;

beforeAll(() => {
  origin = new URL(server.url).origin;
});

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as { data?: any; errors?: { message: string; extensions: Record<string, unknown> }[] } };
}

/** Resolves once `check` holds, polling it every 10 ms; rejects after 5 s naming `what`. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (const started = performance.now(); !(await check()); ) {
    if (performance.now() - started > 5_000) throw new Error(`never saw ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The value of one sample of the Prometheus text, e.g. `swarm_errors_total{code="X"}`; 0 when absent. */
async function metric(sample: string): Promise<number> {
  const text = await (await fetch(`${origin}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

test("/health answers while the process lives; /ready while Redis answers and its state is intact", async () => {
  const health = await fetch(`${origin}/health`);
  expect([health.status, await health.json()]).toEqual([200, { status: "ok" }]);
  const ready = await fetch(`${origin}/ready`);
  expect([ready.status, await ready.json()]).toEqual([200, { ready: true, state: "intact", shuttingDown: false }]);
});

test("each request is one JSON log line with its request id, operation, duration, codes and actor; the id comes back in x-request-id", async () => {
  const mine = await post(server.url, { query: '{ context(id: "nope") { id } }' }, { "x-request-id": "client-id-1" });
  expect(mine.headers.get("x-request-id")).toBe("client-id-1");
  expect(lines.find((l) => l.requestId === "client-id-1")).toMatchObject({
    level: "info",
    msg: "request",
    transport: "http",
    operation: "query:context",
    codes: [],
    actor: "anonymous",
    status: 200,
    durationMs: expect.any(Number),
    time: expect.any(String),
  });
  // An id that is not a plain token is replaced, so that log lines cannot be forged through it.
  const replaced = await post(server.url, { query: "{ health { ok } }" }, { "x-request-id": 'forged", "level": "x' });
  expect(replaced.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  // Refused before it could run: its operation is "invalid", a label that cannot grow with input.
  const refused = await post(server.url, { query: "{ nope }" });
  expect(lines.find((l) => l.requestId === refused.headers.get("x-request-id"))).toMatchObject({ operation: "invalid", codes: ["VALIDATION_FAILED"] });
});

test("metrics count requests by operation, errors by code, ledger refusals, subscriptions, feed lag and Redis latency", async () => {
  const id = "metrics-1";
  await server.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 10 } } } });
  const refused = await server.request(AllocateDocument, { contextId: id, request: [{ kind: "credits", amount: 50 }], mode: "EXACT" as never });
  expect(refused.errors?.[0]?.extensions?.code).toBe("INSUFFICIENT_RESOURCES");
  expect(await metric('swarm_requests_total{transport="http",operation="mutation:createContext"}')).toBeGreaterThanOrEqual(1);
  expect(await metric('swarm_errors_total{code="INSUFFICIENT_RESOURCES"}')).toBe(1);
  expect(await metric('swarm_ledger_refusals_total{operation="mutation:allocate",code="INSUFFICIENT_RESOURCES"}')).toBe(1);

  const feed = subscribe("ws", server.url, ContextChangesDocument, { contextIds: [id] });
  await eventually(async () => (await metric("swarm_active_subscriptions")) === 1, "one active subscription");
  const lagBefore = await metric("swarm_feed_lag_seconds_count");
  await server.data(PatchContextHeadDocument, { id, patch: [{ op: "add" as never, path: "/n", value: 1 }] });
  await feed.until((c) => c.values.length > 0, "the change");
  expect(await metric("swarm_feed_lag_seconds_count")).toBe(lagBefore + 1);
  feed.close();
  await eventually(async () => (await metric("swarm_active_subscriptions")) === 0, "the subscription counted out");
  // The state check (every 50 ms here) is the Redis latency sample.
  expect(await metric("swarm_redis_latency_seconds_count")).toBeGreaterThan(0);
  expect(await metric("swarm_redis_state_intact")).toBe(1);
});

test("an unexpected fault reaches the client as INTERNAL_SERVER_ERROR with a request id and no detail; the log has its cause under that id", async () => {
  const id = "fault-1";
  await server.data(CreateContextDocument, { id, document: { a: 1 } });
  // Break the stored document behind the server's back: reading it fails inside the server.
  const redis = new Redis(server.config.redisUrl);
  await redis.hset(`${server.config.keyPrefix}:{ctx:${id}}:meta`, '."a"', "{not json", "head", "corrupted");
  redis.disconnect();
  const res = await post(server.url, { query: `{ context(id: "${id}") { document } }` });
  const error = res.body.errors?.[0];
  expect(error?.message).toBe("Unexpected error.");
  expect(error?.extensions).toEqual({ code: "INTERNAL_SERVER_ERROR", requestId: res.headers.get("x-request-id") });
  expect(JSON.stringify(res.body)).not.toMatch(/JSON|at .*\.ts/);
  const logged = lines.find((l) => l.msg === "internal error" && l.requestId === res.headers.get("x-request-id"));
  expect(logged?.level).toBe("error");
  expect(String(logged?.error)).toMatch(/SyntaxError/);
});

test("the rate limit is per key and shared by instances; over it RATE_LIMITED (HTTP 429) says when to retry", async () => {
  const { admin, viewer, ring } = testKeys();
  const a = await startTestServer({ keys: ring, rateLimit: 5 });
  const b = await startTestServer({ keys: ring, rateLimit: 5, keyPrefix: a.config.keyPrefix });
  try {
    const query = { query: "{ health { ok } }" };
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await post(i % 2 ? b.url : a.url, query, { authorization: admin.authorization })).status);
    const over = await post(a.url, query, { authorization: admin.authorization });
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(statuses[5]).toBe(429);
    expect(over.body.errors?.[0]?.extensions).toMatchObject({ code: "RATE_LIMITED", retryAfterMs: expect.any(Number) });
    const retryAfterMs = over.body.errors![0]!.extensions.retryAfterMs as number;
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(1000);
    // Another key has its own count.
    expect((await post(b.url, query, { authorization: viewer.authorization })).status).toBe(200);
    // WebSocket subscribes count too.
    const feed = subscribe("ws", a.url, ContextChangesDocument, { contextIds: ["x"] }, { authorization: admin.authorization });
    await feed.untilEnded();
    expect(feed.errors.map((e) => e.extensions?.code)).toEqual(["RATE_LIMITED"]);
    // Once the window has passed, the key is served again.
    await new Promise((resolve) => setTimeout(resolve, retryAfterMs));
    expect((await post(a.url, query, { authorization: admin.authorization })).status).toBe(200);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("open mode (no keys) listens on loopback only and says so loudly; with keys any address is allowed", async () => {
  const warned: Record<string, unknown>[] = [];
  const open = await createApp(testConfig({ host: "0.0.0.0" }), createLogger("info", (l) => warned.push(JSON.parse(l))));
  await expect(open.start()).rejects.toThrow(/only listens on loopback/);
  await open.close();

  const local = await createApp(testConfig(), createLogger("info", (l) => warned.push(JSON.parse(l))));
  await local.start();
  await local.close();
  expect(warned.find((l) => l.level === "warn")?.msg).toMatch(/^OPEN MODE/);

  const keyed = await createApp(testConfig({ host: "0.0.0.0", keys: testKeys().ring }), createLogger("error"));
  expect(await keyed.start()).toMatch(/^http:\/\/0\.0\.0\.0:\d+\/graphql$/);
  await keyed.close();
});

test("log lines never hold an API key", async () => {
  const { admin, ring } = testKeys();
  const seen: string[] = [];
  const keyed = await startTestServer({ keys: ring }, createLogger("debug", (l) => seen.push(l)));
  await post(keyed.url, { query: "{ health { ok } }" }, { authorization: admin.authorization });
  await post(keyed.url, { query: "{ health { ok } }" }, { authorization: "Bearer wrong-key" });
  await keyed.close();
  expect(seen.length).toBeGreaterThan(2);
  expect(seen.join("")).not.toContain(admin.key);
  expect(seen.join("")).not.toContain("wrong-key");
});
