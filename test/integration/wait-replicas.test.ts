// Proves SWARM_REDIS_WAIT_REPLICAS on one Redis with one replica: while the replica cannot confirm (paused), a write is refused UNAVAILABLE saying it was applied on the master only, a retry with the same opId (on this server or another, whose replay must be confirmed too) stays UNAVAILABLE until the replica is back and then returns the first outcome, that reads and the rate limit do not wait for replicas, and that a script Redis forgot is confirmed only after it ran.
import { afterAll, beforeAll, expect, test } from "vitest";
import { AllocateDocument, CreateContextDocument, GetContextDocument, PatchContextDocument } from "../gql/graphql.js";
import { errorCode, startTestServer, useTestServer, type TestServer } from "../helpers/app.js";
import { Backoff } from "../helpers/backoff.js";
import { Redis } from "ioredis";
import { Keys } from "../../src/redis/keys.js";
import { startRedisServer, type RedisServer } from "../../support/redis-server.js";

let master: RedisServer;
let replica: RedisServer;
let onReplica: Redis;
beforeAll(async () => {
  master = await startRedisServer();
  replica = await startRedisServer(["--replicaof", "127.0.0.1", String(master.port)]);
  onReplica = new Redis(replica.url);
  const backoff = new Backoff(10, 200);
  while (!/master_link_status:up/.test(await onReplica.info("replication"))) await backoff.wait();
});
afterAll(async () => {
  onReplica?.disconnect();
  await replica?.stop();
  await master?.stop();
});
// A rate limit: its counting script must not wait for replicas.
const server = useTestServer(() => ({ redisUrl: master.url, redisWaitReplicas: 1, rateLimit: 10_000 }));
/**
 * A second instance of the same deployment, with a cache of its own: a retry it gets finds the
 * outcome recorded. It writes nothing else while the replica is paused (no rate limit, heartbeat
 * or sweeper), so that a WAIT on its connection covers only what its retries write.
 */
let other: TestServer;
beforeAll(async () => {
  other = await startTestServer({
    redisUrl: master.url,
    redisWaitReplicas: 1,
    keyPrefix: server.config.keyPrefix,
    leaseSweepMs: 0,
    heartbeatMs: 600_000,
    heartbeatTtlMs: 1_200_000,
  });
});
afterAll(async () => {
  await other?.close();
});

const patchOf = (value: number) => [{ op: "replace" as never, path: "/n", value }];

test("an acknowledged write is on the replica; with the replica paused a write is applied on the master but refused UNAVAILABLE, and retries return its outcome once the replica confirms it", async () => {
  const id = "waited";
  const keys = new Keys(server.config.keyPrefix).context(id);
  await server.data(CreateContextDocument, { id, document: { n: 0, resources: { limits: { credits: 100 } } } });
  expect(await onReplica.hget(keys.meta, "version")).toBe("1");
  const first = await server.data(PatchContextDocument, { id, patch: patchOf(1), opId: "p1" });
  expect(await onReplica.hget(keys.meta, "version")).toBe(String(first.patchContext.version));

  replica.pause();
  try {
    const refused = await server.request(PatchContextDocument, { id, patch: patchOf(2), opId: "p2" });
    expect(errorCode(refused)).toBe("UNAVAILABLE");
    expect(refused.errors![0]!.message).toMatch(/applied on its Redis master, but only 0 of the 1 replicas .* retrying with the same opId is safe/);
    expect(refused.errors![0]!.extensions).toMatchObject({ confirmedReplicas: 0, requiredReplicas: 1 });
    // Applied on the master: version 3 is there. Reads, and the rate limit's count, do not wait for replicas.
    const read = await server.data(GetContextDocument, { id });
    expect(read.context).toMatchObject({ version: 3, document: { n: 2 } });
    // A retry anywhere replays the outcome, and a replay is confirmed like a write.
    expect(errorCode(await server.request(PatchContextDocument, { id, patch: patchOf(2), opId: "p2" }))).toBe("UNAVAILABLE");
    expect(errorCode(await other.request(PatchContextDocument, { id, patch: patchOf(2), opId: "p2" }))).toBe("UNAVAILABLE");
    const allocation = { contextId: id, request: [{ kind: "credits", amount: 5 }], mode: "EXACT" as never, opId: "a1" };
    expect(errorCode(await server.request(AllocateDocument, allocation))).toBe("UNAVAILABLE");
    expect(errorCode(await other.request(AllocateDocument, allocation))).toBe("UNAVAILABLE");
  } finally {
    replica.resume();
  }
  const retried = await other.data(PatchContextDocument, { id, patch: patchOf(2), opId: "p2" });
  expect(retried.patchContext).toMatchObject({ version: 3, document: { n: 2 } });
  expect(await onReplica.hget(keys.meta, "version")).toBe("3");
  const allocated = await other.data(AllocateDocument, { contextId: id, request: [{ kind: "credits", amount: 5 }], mode: "EXACT" as never, opId: "a1" });
  expect(allocated.allocate.granted).toEqual([{ kind: "credits", amount: 5 }]);
  // Once: the budget holds one allocation of 5.
  const again = await server.data(AllocateDocument, { contextId: id, request: [{ kind: "credits", amount: 5 }], mode: "EXACT" as never, opId: "a1" });
  expect(again.allocate.id).toBe(allocated.allocate.id);
});

test("a write whose script Redis forgot (SCRIPT FLUSH) is confirmed after it runs, not before", async () => {
  const id = "flushed";
  await server.data(CreateContextDocument, { id, document: { n: 0 } });
  const direct = new Redis(master.url);
  await direct.call("SCRIPT", "FLUSH");
  direct.disconnect();
  replica.pause();
  try {
    expect(errorCode(await server.request(PatchContextDocument, { id, patch: patchOf(1), opId: "f1" }))).toBe("UNAVAILABLE");
  } finally {
    replica.resume();
  }
  expect((await server.data(PatchContextDocument, { id, patch: patchOf(1), opId: "f1" })).patchContext.version).toBe(2);
});
