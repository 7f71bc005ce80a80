// Proves that faults other than a lost Redis connection are never swallowed: a malformed feed entry ends its subscribers (and only theirs) with a resumable RESYNC_REQUIRED past it instead of stalling them, a rate limit that cannot be counted refuses the request, and a WebSocket subscription whose stream fails gets a masked error; each is logged once with its cause and counted in /metrics.
import { beforeAll, describe, expect, test } from "vitest";
import { createLogger } from "../../src/observability/logger.js";
import { Keys } from "../../src/redis/keys.js";
import { ContextChangesDocument, CreateContextDocument, HealthDocument, PatchContextHeadDocument, WatchSliceDocument } from "../gql/graphql.js";
import { errorCode, startTestServer, useTestServer, type ServerHandle } from "../helpers/app.js";
import { seqsOf, subscribe, TRANSPORTS } from "../helpers/feed-client.js";

const lines: Record<string, unknown>[] = [];
const log = createLogger("warn", (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
const server = useTestServer({}, log);
let keys: Keys;

beforeAll(() => {
  keys = new Keys(server.config.keyPrefix);
});

/** The value of one sample of the server's Prometheus text, e.g. `swarm_faults_total{source="x"}`; 0 when absent. */
async function metric(on: ServerHandle, sample: string): Promise<number> {
  const text = await (await fetch(new URL("/metrics", on.url))).text();
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

const faults = (source: string) => lines.filter((l) => l.source === source);

/**
 * Appends an entry to a context's feed as a change script would (seq, stream, wake-up), but with
 * `fields` as given: what a buggy writer, a newer server or a hand edit could leave there.
 */
async function appendRaw(id: string, fields: Record<string, string>): Promise<number> {
  const ctx = keys.context(id);
  const seq = await server.redis.incr(ctx.seq);
  await server.redis.xadd(ctx.feed, `${seq}-0`, ...Object.entries(fields).flat());
  await server.redis.publish(keys.changesChannel, `${id} ${seq}`);
  return seq;
}

async function create(id: string) {
  await server.data(CreateContextDocument, { id, document: { a: 0 } });
}

async function patch(id: string, value: unknown) {
  return (await server.data(PatchContextHeadDocument, { id, patch: [{ op: "replace" as never, path: "/a", value }] })).patchContext;
}

describe.each(TRANSPORTS)("over %s", (transport) => {
  test("a malformed feed entry ends its subscribers with RESYNC_REQUIRED past it, logged once and counted; other contexts flow on", async () => {
    const poisoned = `poisoned-${transport}`;
    const healthy = `healthy-${transport}`;
    await create(poisoned);
    await create(healthy);
    await patch(poisoned, 1); // seq 2, version 2
    const live = subscribe(transport, server.url, ContextChangesDocument, { contextIds: [poisoned], after: [{ contextId: poisoned, seq: 1 }] });
    const other = subscribe(transport, server.url, ContextChangesDocument, { contextIds: [healthy], after: [{ contextId: healthy, seq: 1 }] });
    await live.until((c) => seqsOf(c).includes(2), "seq 2");
    const counted = await metric(server, 'swarm_faults_total{source="feed-entry"}');

    const bad = await appendRaw(poisoned, { kind: "UPDATED", version: "2", paths: "[not json", patch: "[]", actor: "x", at: new Date().toISOString() });
    // A second subscriber meets it while replaying, through a pipeline of its own.
    const replaying = subscribe(transport, server.url, ContextChangesDocument, { contextIds: [poisoned], after: [{ contextId: poisoned, seq: 1 }] });
    // The replaying one read seq 2 together with the bad entry: the resync covers both.
    for (const [client, seqs] of [[live, [2]], [replaying, []]] as const) {
      await client.untilEnded();
      expect(seqsOf(client)).toEqual(seqs);
      // Re-read the context (at version 2 as of the bad entry) and go on after it.
      expect(client.values.at(-1)!.contextChanges.resync).toEqual([{ contextId: poisoned, seq: bad, version: 2 }]);
      expect(client.errors.map((e) => e.extensions)).toEqual([{ code: "RESYNC_REQUIRED", after: [{ contextId: poisoned, seq: bad }] }]);
    }
    expect(faults("feed-entry").filter((l) => l.contextId === poisoned)).toEqual([
      expect.objectContaining({ level: "error", seq: bad, error: expect.stringContaining("JSON") }),
    ]);
    expect(await metric(server, 'swarm_faults_total{source="feed-entry"}')).toBe(counted + 1);

    const resumed = subscribe(transport, server.url, ContextChangesDocument, { contextIds: [poisoned], after: live.errors[0]!.extensions!.after as never });
    const next = (await patch(poisoned, 2)).seq;
    await resumed.until((c) => seqsOf(c).includes(next), "the change after the bad entry");
    expect(seqsOf(resumed)).toEqual([next]);
    expect(resumed.errors).toEqual([]);
    resumed.close();

    const healthySeq = (await server.data(PatchContextHeadDocument, { id: healthy, patch: [{ op: "replace" as never, path: "/a", value: 1 }] })).patchContext.seq;
    await other.until((c) => seqsOf(c).includes(healthySeq), "the other context's change");
    expect(other.errors).toEqual([]);
    other.close();
  });
});

test("a WebSocket subscription whose stream fails gets a masked INTERNAL_SERVER_ERROR with a request id; the cause is logged once and counted", async () => {
  const id = "stream-fails";
  await create(id);
  const watcher = subscribe("ws", server.url, WatchSliceDocument, { id, paths: ["/a"] });
  await watcher.until((c) => c.values.length === 1, "the first value");
  const counted = await metric(server, 'swarm_faults_total{source="websocket"}');
  // The document can no longer be read (a wrong type where its hash should be); the next
  // change makes watchSlice read it.
  const ctx = keys.context(id);
  await server.redis.multi().del(ctx.meta).set(ctx.meta, "not a hash").exec();
  await appendRaw(id, { kind: "UPDATED", version: "2", paths: '["/a"]', patch: "[]", actor: "x", at: new Date().toISOString() });
  await watcher.untilEnded();
  expect(watcher.errors).toEqual([{ message: "Unexpected error.", extensions: { code: "INTERNAL_SERVER_ERROR", requestId: expect.any(String) } }]);
  const requestId = watcher.errors[0]!.extensions!.requestId;
  expect(lines.filter((l) => l.requestId === requestId)).toEqual([
    expect.objectContaining({ level: "error", source: "websocket", error: expect.stringContaining("WRONGTYPE") }),
  ]);
  expect(await metric(server, 'swarm_faults_total{source="websocket"}')).toBe(counted + 1);
});

test("a rate limit that cannot be counted (not for a lost connection) refuses the request with UNAVAILABLE, logged and counted", async () => {
  const limited = await startTestServer({ rateLimit: 1_000 }, log);
  try {
    // The key's window holds the wrong type before its first request (after it, the instance
    // would admit a lease's worth of requests without asking Redis): counting it fails.
    const window = new Keys(limited.config.keyPrefix).rate("anonymous");
    await server.redis.set(window, "not a hash");
    const res = await limited.request(HealthDocument);
    expect(errorCode(res)).toBe("UNAVAILABLE");
    expect(res.data ?? null).toBeNull();
    expect(faults("rate-limit")).toEqual([expect.objectContaining({ level: "error", error: expect.stringContaining("WRONGTYPE") })]);
    expect(await metric(limited, 'swarm_faults_total{source="rate-limit"}')).toBe(1);
  } finally {
    await limited.close();
  }
});
