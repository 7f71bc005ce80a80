// Proves the feed survives faults: a subscriber that stops reading is ended with a resync and a resumable error (past the bound in changes or in bytes) while others are unaffected and the server's heap stays bounded, a slow replay is not ended, `CLIENT KILL TYPE pubsub` loses nothing, and subscribers that disconnect at random points and resume see every change exactly once.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ContextChangesDocument, CreateContextDocument, PatchContextHeadDocument, type ContextChangesSubscription } from "../gql/graphql.js";
import { useTestServer, type ServerHandle } from "../helpers/app.js";
import { range, rawWsSubscription, sseResult, subscribe, TRANSPORTS, type ErrorJson, type FeedClient } from "../helpers/feed-client.js";
import { startRedisServer, type RedisServer } from "../../support/redis-server.js";

type Change = ContextChangesSubscription["contextChanges"]["changes"][number];
type Resync = ContextChangesSubscription["contextChanges"]["resync"][number];

// maxAliases: the stalled subscriber inflates its messages with 40 aliases (QUERY).
const server = useTestServer({ subscriberBuffer: 20, subscriberStallMs: 500, maxAliases: 40 });

async function create(id: string, on: ServerHandle = server) {
  // n starts below every value the tests write: a write of the value already there writes nothing.
  await on.data(CreateContextDocument, { id, document: { blob: "", n: -1 } });
}

async function patch(id: string, path: string, value: unknown, on: ServerHandle = server) {
  return (await on.data(PatchContextHeadDocument, { id, patch: [{ op: "replace" as never, path, value }] })).patchContext;
}

const changesOf = (client: FeedClient<ContextChangesSubscription>): Change[] => client.values.flatMap((v) => v.contextChanges.changes);

interface Stalled {
  /** Starts reading again; resolves with everything the server sent, once it has ended the stream. */
  resume(): Promise<{ changes: Change[]; resync: Resync[]; errors: ErrorJson[] }>;
}

/**
 * The stalled subscriber's subscription. Forty aliases of each change's patch (10 KB) make every
 * message 400 KB, so that 300 changes (120 MB) overflow the socket buffers between the two ends
 * (up to 36 MB here: tcp_rmem and tcp_wmem allow 32 MB + 4 MB) and reach the server's bound.
 */
const QUERY = `subscription($id: ID!) { contextChanges(contextIds: [$id]) {
  changes { contextId seq version kind ${Array.from({ length: 40 }, (_, i) => `p${i}: patch`).join(" ")} }
  resync { contextId seq version } } }`;

type Feed = ContextChangesSubscription["contextChanges"];

/** What a stalled subscriber received once it read again. */
function received(batches: ({ data?: { contextChanges: Feed } | null; errors?: ErrorJson[] } | undefined | null)[]) {
  return {
    changes: batches.flatMap((b) => b?.data?.contextChanges.changes ?? []),
    resync: batches.flatMap((b) => b?.data?.contextChanges.resync ?? []),
    errors: batches.flatMap((b) => b?.errors ?? []),
  };
}

/** A graphql-ws subscriber whose socket stops reading right after it subscribes. */
async function stalledWs(id: string, on: ServerHandle = server): Promise<Stalled> {
  const raw = rawWsSubscription<{ contextChanges: Feed }>(on.url, QUERY, { id });
  await raw.subscribed;
  raw.socket.pause();
  return {
    async resume() {
      raw.socket.resume();
      await raw.ended;
      raw.socket.close();
      return received(raw.messages.filter((m) => m.type === "next").map((m) => m.payload));
    },
  };
}

/** An SSE subscriber that does not read its response until resumed. */
async function stalledSse(id: string, on: ServerHandle = server): Promise<Stalled> {
  const res = await fetch(on.url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify({ query: QUERY, variables: { id } }),
  });
  return {
    async resume() {
      return received((await res.text()).split("\n\n").map((event) => sseResult<{ contextChanges: Feed }>(event)));
    },
  };
}

describe.each(TRANSPORTS)("over %s", (transport) => {
  test("a subscriber that stops reading is ended with a resync and a resumable error; one sharing its pipeline is unaffected", async () => {
    const id = `slow-${transport}`;
    await create(id);
    // Same arguments, no cursor: both subscribers share one pipeline on the server.
    const healthy = subscribe(transport, server.url, ContextChangesDocument, { contextIds: [id] });
    for (let n = 0; changesOf(healthy).length === 0; n++) {
      await patch(id, "/n", n);
      await healthy.until((c) => changesOf(c).length > 0, "a first change", 200).catch(() => undefined);
    }
    const stalled = transport === "ws" ? await stalledWs(id) : await stalledSse(id);
    const blob = "x".repeat(10_000);
    let final = 0;
    for (let i = 0; i < 300; i++) final = (await patch(id, "/blob", `${i}${blob}`)).seq;
    await healthy.until((c) => changesOf(c).at(-1)?.seq === final, "every change");
    const first = changesOf(healthy)[0]!.seq;
    expect(changesOf(healthy).map((c) => c.seq)).toEqual(range(first, final));
    healthy.close();

    const { changes, resync, errors } = await stalled.resume();
    const last = changes.at(-1)!.seq;
    expect(changes.map((c) => c.seq)).toEqual(range(changes[0]!.seq, last));
    expect(last).toBeLessThan(final);
    expect(resync).toEqual([{ contextId: id, seq: last, version: last }]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.extensions).toEqual({ code: "RESYNC_REQUIRED", after: [{ contextId: id, seq: last }] });

    const resumed = subscribe(transport, server.url, ContextChangesDocument, { contextIds: [id], after: errors[0]!.extensions!.after as never });
    await resumed.until((c) => changesOf(c).at(-1)?.seq === final, "the rest");
    expect(changesOf(resumed).map((c) => c.seq)).toEqual(range(last + 1, final));
    resumed.close();
  });

  test("a subscriber replaying far behind while changes keep coming is not ended: it catches up", async () => {
    const id = `replay-${transport}`;
    await create(id);
    for (let i = 0; i < 200; i++) await patch(id, "/n", i);
    // 200 changes behind with a bound of 20, and 200 more arrive while it replays.
    const client = subscribe(transport, server.url, ContextChangesDocument, { contextIds: [id], after: [{ contextId: id, seq: 1 }], batch: { maxSize: 5 } });
    for (let i = 0; i < 200; i++) await patch(id, "/n", 1000 + i);
    await client.until((c) => changesOf(c).at(-1)?.seq === 401, "seq 401");
    expect(changesOf(client).map((c) => c.seq)).toEqual(range(2, 401));
    expect(client.errors).toEqual([]);
    client.close();
  });

  test("subscribers that disconnect at random points and resume from their last seen seq see every change once, in order", async () => {
    const prefix = `resume-${transport}-`;
    const ids = range(1, 20).map((i) => `${prefix}${i}`);
    for (const id of ids) await create(id);
    let seed = transport === "ws" ? 7 : 11;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const subscriber = async () => {
      const seen = new Map<string, number[]>(ids.map((id) => [id, []]));
      const lastSeen = () => ids.map((contextId) => ({ contextId, seq: seen.get(contextId)!.at(-1) ?? 1 }));
      let sessions = 0;
      while (ids.some((id) => seen.get(id)!.at(-1) !== 101)) {
        sessions++;
        const client = subscribe(transport, server.url, ContextChangesDocument, { idPrefix: prefix, after: lastSeen() });
        const quota = 20 + Math.floor(random() * 200);
        await client
          .until((c) => changesOf(c).length >= quota || ids.every((id) => [...(seen.get(id) ?? [])].concat(changesOf(c).filter((x) => x.contextId === id).map((x) => x.seq)).at(-1) === 101), "its quota")
          .finally(() => client.close());
        for (const change of changesOf(client)) seen.get(change.contextId)!.push(change.seq);
      }
      return { seen, sessions };
    };
    const writers = [0, 1, 2, 3].map(async (w) => {
      for (let n = 0; n < 500; n++) await patch(ids[(w * 5 + n) % 20]!, "/n", n);
    });
    const results = await Promise.all([subscriber(), subscriber(), subscriber(), ...writers]);
    for (const result of results.slice(0, 3) as Awaited<ReturnType<typeof subscriber>>[]) {
      expect(result.sessions).toBeGreaterThan(3);
      for (const id of ids) expect(result.seen.get(id), id).toEqual(range(2, 101));
    }
  });
});

test("while a subscriber stays stalled and changes keep flowing, the server's heap stays bounded", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const heapMb = () => {
    gc();
    return process.memoryUsage().heapUsed / 1e6;
  };
  const id = "bounded-heap";
  await create(id);
  const stalled = await stalledWs(id);
  const blob = "x".repeat(10_000);
  await patch(id, "/blob", blob);
  const start = heapMb();
  // 3,000 changes of 10 KB: a server that kept them for the stalled subscriber would hold 30 MB
  // more (36 MB measured with the bound out of reach); with the bound of 20 it holds about 5.
  for (let i = 0; i < 3000; i++) await patch(id, "/blob", `${i}${blob}`);
  expect(heapMb() - start).toBeLessThan(15);
  const { errors } = await stalled.resume();
  expect(errors.map((e) => e.extensions?.code)).toEqual(["RESYNC_REQUIRED"]);
});

describe("the bound in bytes", () => {
  // The bound in changes out of reach: only the one in bytes (about 50 of these changes) can end a subscriber.
  const bounded = useTestServer({ subscriberBuffer: 1_000_000, subscriberBufferBytes: 500_000, subscriberStallMs: 500, maxAliases: 40 });

  test.each(TRANSPORTS)("a subscriber that stops reading is ended with a resync once it holds more bytes than the bound (%s)", async (transport) => {
    const id = `bytes-${transport}`;
    await create(id, bounded);
    const stalled = transport === "ws" ? await stalledWs(id, bounded) : await stalledSse(id, bounded);
    const blob = "x".repeat(10_000);
    let final = 0;
    for (let i = 0; i < 300; i++) final = (await patch(id, "/blob", `${i}${blob}`, bounded)).seq;
    const { changes, resync, errors } = await stalled.resume();
    const last = changes.at(-1)!.seq;
    expect(changes.map((c) => c.seq)).toEqual(range(changes[0]!.seq, last));
    expect(last).toBeLessThan(final);
    expect(resync).toEqual([{ contextId: id, seq: last, version: last }]);
    expect(errors.map((e) => e.extensions)).toEqual([{ code: "RESYNC_REQUIRED", after: [{ contextId: id, seq: last }] }]);
  });
});

describe("the wake-up connection", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis.stop();
  });
  const isolated = useTestServer(() => ({ redisUrl: redis.url }));

  test.each(TRANSPORTS)("CLIENT KILL TYPE pubsub mid-stream loses nothing (%s)", async (transport) => {
    const id = `kill-${transport}`;
    await create(id, isolated);
    const client = subscribe(transport, isolated.url, ContextChangesDocument, { contextIds: [id], after: [{ contextId: id, seq: 1 }] });
    for (let i = 0; i < 30; i++) await patch(id, "/n", i, isolated);
    await client.until((c) => changesOf(c).at(-1)?.seq === 31, "seq 31");
    const channel = `${isolated.config.keyPrefix}:changes`;
    const [before] = (await isolated.redis.call("CLIENT", "LIST", "TYPE", "pubsub")) as string;
    expect(before).toBeDefined();
    expect(Number(await isolated.redis.call("CLIENT", "KILL", "TYPE", "pubsub"))).toBeGreaterThan(0);
    // The next change is committed while nobody is subscribed: its wake-up is gone for good.
    const [, subscribers] = (await isolated.redis.pubsub("NUMSUB", channel)) as [string, number];
    expect(subscribers).toBe(0);
    await patch(id, "/n", "while down", isolated);
    await client.until((c) => changesOf(c).at(-1)?.seq === 32, "the change made while the wake-up connection was down");
    for (let i = 0; i < 30; i++) await patch(id, "/n", i, isolated);
    await client.until((c) => changesOf(c).at(-1)?.seq === 62, "seq 62");
    expect(changesOf(client).map((c) => c.seq)).toEqual(range(2, 62));
    client.close();
  });
});
