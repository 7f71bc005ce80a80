// Proves API.md's six delivery guarantees over both transports (graphql-ws and SSE), plus watchSlice, argument validation, one Redis subscription per instance, shared pipelines with their own selections, the per-connection cap and keep-alive pings.
import { randomUUID } from "node:crypto";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { describe, expect, test } from "vitest";
import {
  AcquireLockDocument,
  AllocateDocument,
  ContextChangesDocument,
  CreateContextDocument,
  DeleteContextDocument,
  MergeContextDocument,
  PatchContextHeadDocument,
  ReleaseDocument,
  ReleaseLockDocument,
  RollbackContextDocument,
  WatchSliceDocument,
  type ContextChangesSubscription,
  type ContextChangesSubscriptionVariables,
} from "../gql/graphql.js";
import { useTestServer, type ServerHandle } from "../helpers/app.js";
import { channelSubscribers } from "../helpers/redis-state.js";
import { range, rawWsSubscription, subscribe, TRANSPORTS, type FeedClient, type RawSubscription, type Transport } from "../helpers/feed-client.js";

type Batch = ContextChangesSubscription["contextChanges"];
type Client = FeedClient<ContextChangesSubscription>;

const server = useTestServer({ maxSubscriptionsPerConnection: 2, keepAliveMs: 100 });
/** A second instance on the same Redis and key prefix. */
const other = useTestServer(() => ({ keyPrefix: server.config.keyPrefix }));
const small = useTestServer({ feedRetention: 5 });

const batchesOf = (client: Client): Batch[] => client.values.map((v) => v.contextChanges);
const changesOf = (client: Client) => batchesOf(client).flatMap((b) => b.changes);
const seqsOf = (client: Client, contextId: string) => changesOf(client).filter((c) => c.contextId === contextId).map((c) => c.seq);
const hasSeq = (contextId: string, seq: number) => (client: Client) => seqsOf(client, contextId).includes(seq);

function watch(transport: Transport, variables: ContextChangesSubscriptionVariables, on: ServerHandle = server): Client {
  return subscribe(transport, on.url, ContextChangesDocument, variables);
}

async function create(id: string, document: unknown = { a: { b: { c: 1 } }, ab: 1, c: 1 }, on: ServerHandle = server) {
  return (await on.data(CreateContextDocument, { id, document })).createContext;
}

async function patch(id: string, path: string, value: unknown, on: ServerHandle = server) {
  return (await on.data(PatchContextHeadDocument, { id, patch: [{ op: "replace" as never, path, value }] })).patchContext;
}

describe.each(TRANSPORTS)("over %s", (transport) => {
  test("1: per context, changes of every kind arrive in seq order with no gap and no duplicate, while writers race", async () => {
    const ids = [`g1-${transport}-a`, `g1-${transport}-b`];
    for (const id of ids) await create(id, { n: 0, resources: { limits: { credits: 1000 } } });
    const client = watch(transport, { contextIds: ids, after: ids.map((contextId) => ({ contextId, seq: 1 })) });
    const writer = async (w: number) => {
      for (let i = 0; i < 15; i++) {
        const id = ids[(w + i) % 2]!;
        if (i % 3 === 0) await patch(id, "/n", w * 100 + i);
        if (i % 3 === 1) {
          const a = (await server.data(AllocateDocument, { contextId: id, request: [{ kind: "credits", amount: 1 }], mode: "UP_TO" as never })).allocate;
          await server.data(ReleaseDocument, { allocationId: a.id });
        }
        if (i % 3 === 2) {
          const lock = (await server.data(AcquireLockDocument, { contextId: id, name: `w${w}`, holder: "t", leaseMs: 10_000 })).acquireLock;
          await server.data(ReleaseLockDocument, { contextId: id, name: `w${w}`, token: lock.token });
        }
      }
    };
    await Promise.all([0, 1, 2, 3].map(writer));
    const last = await Promise.all(ids.map(async (id) => (await patch(id, "/n", -1)).seq));
    await client.until((c) => ids.every((id, i) => hasSeq(id, last[i]!)(c)), "both contexts' last change");
    for (const [i, id] of ids.entries()) expect(seqsOf(client, id)).toEqual(range(2, last[i]!));
    const kinds = new Set(changesOf(client).map((c) => c.kind));
    expect([...kinds].sort()).toEqual(["ALLOCATED", "LOCK_ACQUIRED", "LOCK_RELEASED", "RELEASED", "UPDATED"]);
    client.close();
  });

  test("2: `after` replays, then continues live with no gap or duplicate at the seam", async () => {
    const id = `g2-${transport}`;
    await create(id);
    for (let i = 0; i < 30; i++) await patch(id, "/c", i);
    const client = watch(transport, { contextIds: [id], after: [{ contextId: id, seq: 10 }], batch: { maxSize: 7 } });
    // Writes go on while the subscription replays and goes live.
    for (let i = 0; i < 30; i++) await patch(id, "/c", 100 + i);
    await client.until(hasSeq(id, 61), "seq 61");
    expect(seqsOf(client, id)).toEqual(range(11, 61));
    expect(batchesOf(client).every((b) => b.changes.length <= 7 && b.resync.length === 0)).toBe(true);
    client.close();
  });

  test("2: a cursor older than the retained feed yields a resync entry, never a silent gap; so does one past the end", async () => {
    const id = `g2r-${transport}`;
    await create(id, { c: 0 }, small);
    for (let i = 0; i < 19; i++) await patch(id, "/c", i + 1, small);
    const old = watch(transport, { contextIds: [id], after: [{ contextId: id, seq: 3 }] }, small);
    const future = watch(transport, { contextIds: [id], after: [{ contextId: id, seq: 999 }] }, small);
    for (const client of [old, future]) {
      await client.until((c) => batchesOf(c).length > 0, "the resync");
      expect(batchesOf(client)[0]).toEqual({ changes: [], resync: [{ contextId: id, seq: 20, version: 20 }] });
    }
    await patch(id, "/c", "after", small);
    for (const client of [old, future]) {
      await client.until(hasSeq(id, 21), "seq 21");
      expect(seqsOf(client, id)).toEqual([21]);
      client.close();
    }
  });

  test("3: the path filter matches UPDATED/ROLLED_BACK changes whose path equals, contains or is inside a filter path", async () => {
    const id = `g3-${transport}`;
    await create(id, { a: { b: { c: 1 }, x: 1 }, ab: 1, c: 1, resources: { limits: { credits: 10 } } });
    const client = watch(transport, { contextIds: [id], paths: ["/a/b"], after: [{ contextId: id, seq: 1 }] });
    await patch(id, "/a/b/c", 2); // seq 2: inside /a/b
    await patch(id, "/ab", 2); // seq 3: a string prefix, not a segment prefix: no
    await patch(id, "/a/x", 2); // seq 4: a sibling: no
    await patch(id, "/a", { b: 1 }); // seq 5: contains /a/b
    await patch(id, "/c", 2); // seq 6: no
    await server.data(MergeContextDocument, { id, merge: { a: { x: 3 } } }); // seq 7: /a/x: no
    await server.data(AllocateDocument, { contextId: id, request: [{ kind: "credits", amount: 1 }], mode: "UP_TO" as never }); // seq 8: not a document change: passes
    await server.data(RollbackContextDocument, { id, toVersion: 1 }); // seq 9: touches /a/b again
    await patch(id, "/a/b", 3); // seq 10: equal
    await client.until(hasSeq(id, 10), "seq 10");
    expect(changesOf(client).map((c) => [c.seq, c.kind])).toEqual([
      [2, "UPDATED"],
      [5, "UPDATED"],
      [8, "ALLOCATED"],
      [9, "ROLLED_BACK"],
      [10, "UPDATED"],
    ]);
    client.close();
  });

  test("3: kinds and actors select changes; idPrefix selects contexts, including ones created later", async () => {
    const prefix = `g3k-${transport}-${randomUUID().slice(0, 8)}-`;
    const first = `${prefix}1`;
    const second = `${prefix}2`;
    await create(first);
    const replayFirst = [{ contextId: first, seq: 0 }];
    const kinds = watch(transport, { idPrefix: prefix, kinds: ["CREATED", "DELETED"], actors: ["anonymous"], after: replayFirst });
    const everything = watch(transport, { idPrefix: prefix, excludeActors: ["someone-else"], after: replayFirst });
    // Once the replay has arrived, both are live: the second context is new to them.
    for (const client of [kinds, everything]) await client.until(hasSeq(first, 1), "the replay");
    await create(second);
    await patch(second, "/c", 5);
    await server.data(DeleteContextDocument, { id: second });
    await create(second);
    await kinds.until(hasSeq(second, 4), "the second create");
    expect(changesOf(kinds).map((c) => [c.contextId, c.kind, c.seq])).toEqual([
      [first, "CREATED", 1],
      [second, "CREATED", 1],
      [second, "DELETED", 3],
      [second, "CREATED", 4],
    ]);
    await everything.until(hasSeq(second, 4), "the second create");
    expect(seqsOf(everything, second)).toEqual([1, 2, 3, 4]);
    for (const client of [kinds, everything]) client.close();
  });

  test("4: a batch is sent when it reaches maxSize, or maxWaitMs after its first change", async () => {
    const id = `g4-${transport}`;
    await create(id);
    for (let i = 0; i < 9; i++) await patch(id, "/c", i);
    const sized = watch(transport, { contextIds: [id], after: [{ contextId: id, seq: 0 }], batch: { maxSize: 4 } });
    await sized.until(hasSeq(id, 10), "the replay");
    expect(batchesOf(sized).map((b) => b.changes.length)).toEqual([4, 4, 2]);
    sized.close();

    const waited = watch(transport, { contextIds: [id], after: [{ contextId: id, seq: 10 }], batch: { maxSize: 100, maxWaitMs: 300 } });
    const sentAt = performance.now();
    await patch(id, "/c", "x");
    await patch(id, "/c", "y");
    await waited.until(hasSeq(id, 12), "two changes");
    const waitedMs = performance.now() - sentAt;
    expect(batchesOf(waited).map((b) => b.changes.map((c) => c.seq))).toEqual([[11, 12]]);
    expect(waitedMs).toBeGreaterThanOrEqual(299);
    waited.close();

    // A full batch goes at once, however long maxWaitMs is (this test would time out waiting a minute).
    const full = watch(transport, { contextIds: [id], after: [{ contextId: id, seq: 12 }], batch: { maxSize: 2, maxWaitMs: 60_000 } });
    await patch(id, "/c", "p");
    await patch(id, "/c", "q");
    await full.until(hasSeq(id, 14), "a full batch");
    expect(batchesOf(full).map((b) => b.changes.map((c) => c.seq))).toEqual([[13, 14]]);
    full.close();
  });

  test("5: over maxBatchesPerSecond changes wait and join later batches; none is dropped", async () => {
    const id = `g5-${transport}`;
    await create(id);
    const client = watch(transport, { contextIds: [id], after: [{ contextId: id, seq: 1 }], maxBatchesPerSecond: 10, batch: { maxSize: 3 } });
    const arrivals: number[] = [];
    let seen = 0;
    const record = () => {
      while (seen < client.values.length) (seen++, arrivals.push(performance.now()));
      return false;
    };
    const recorder = client.until(record, "never", 60_000).catch(() => undefined);
    for (let i = 0; i < 12; i++) await patch(id, "/c", i);
    await client.until(hasSeq(id, 13), "seq 13");
    record();
    expect(seqsOf(client, id)).toEqual(range(2, 13));
    expect(batchesOf(client).every((b) => b.changes.length <= 3)).toBe(true);
    // Arrivals are timed here, after the client's own delays: a batch that reaches this process
    // late narrows the gap to the next one. Over the run the batches keep 100 ms apart on average,
    // and no two arrive together (a burst would be about 0 ms apart).
    const gaps = arrivals.slice(1).map((at, i) => at - arrivals[i]!);
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThanOrEqual(gaps.length * 100 - 15);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(100 - 50);
    client.close();
    await recorder;
  });

  test("6: a change committed through either instance reaches subscribers on both", async () => {
    const id = `g6-${transport}`;
    await create(id);
    const onFirst = watch(transport, { contextIds: [id], after: [{ contextId: id, seq: 1 }] });
    const onSecond = watch(transport, { contextIds: [id], after: [{ contextId: id, seq: 1 }] }, other);
    for (let i = 0; i < 10; i++) await patch(id, "/c", i, i % 2 ? server : other);
    for (const client of [onFirst, onSecond]) {
      await client.until(hasSeq(id, 11), "seq 11");
      expect(seqsOf(client, id)).toEqual(range(2, 11));
      client.close();
    }
  });

  test("watchSlice sends the current slice, then the latest value after each change to a watched path, and ends when the context is deleted", async () => {
    const id = `ws-${transport}`;
    await create(id, { a: { b: 1 }, c: 1 });
    const slices = subscribe(transport, server.url, WatchSliceDocument, { id, paths: ["/a/b", "/missing"] });
    await slices.until((c) => c.values.length === 1, "the current slice");
    expect(slices.values[0]!.watchSlice).toEqual({ version: 1, seq: 1, slice: { "/a/b": 1, "/missing": null } });
    await patch(id, "/c", 2); // not watched
    await patch(id, "/a/b", 2);
    await slices.until((c) => c.values.length === 2, "the second value");
    expect(slices.values[1]!.watchSlice).toEqual({ version: 3, seq: 3, slice: { "/a/b": 2, "/missing": null } });

    const limited = subscribe(transport, server.url, WatchSliceDocument, { id, paths: ["/a"], maxUpdatesPerSecond: 2 });
    await limited.until((c) => c.values.length === 1, "the current slice");
    for (let i = 0; i < 10; i++) await patch(id, "/a/b", 10 + i);
    await limited.until((c) => (c.values.at(-1)!.watchSlice.slice as Record<string, unknown>)["/a"] !== undefined && JSON.stringify(c.values.at(-1)!.watchSlice.slice) === JSON.stringify({ "/a": { b: 19 } }), "the latest value");
    // Over the rate only the latest value is sent: far fewer updates than changes, the last one current.
    expect(limited.values.length).toBeLessThan(6);
    expect(limited.values.at(-1)!.watchSlice.version).toBe(13);

    await server.data(DeleteContextDocument, { id });
    for (const client of [slices, limited]) {
      await client.untilEnded();
      expect(client.errors.map((e) => e.extensions?.code)).toEqual(["NOT_FOUND"]);
    }
  });

  test("malformed arguments are refused with VALIDATION_FAILED naming the argument", async () => {
    const cases: [ContextChangesSubscriptionVariables, string][] = [
      [{ batch: { maxSize: 0 } }, "batch.maxSize"],
      [{ batch: { maxWaitMs: -1 } }, "batch.maxWaitMs"],
      [{ maxBatchesPerSecond: 0 }, "maxBatchesPerSecond"],
      [{ contextIds: [] }, "contextIds"],
      [{ contextIds: ["has space"] }, "contextIds"],
      [{ paths: ["no-slash"] }, "no-slash"],
      [{ after: [{ contextId: "x", seq: -1 }] }, "after.seq"],
      [{ after: [{ contextId: "x", seq: 1 }, { contextId: "x", seq: 2 }] }, "after"],
      [{ actors: Array.from({ length: 1001 }, (_, i) => `a${i}`) }, "actors"],
    ];
    for (const [variables, path] of cases) {
      const client = watch(transport, variables);
      await client.untilEnded();
      expect(client.errors[0]?.extensions, JSON.stringify(variables)).toMatchObject({ code: "VALIDATION_FAILED", path });
    }
  });
});

test("each instance holds one Redis subscription, however many subscribers it serves", async () => {
  const id = "one-subscription";
  await create(id);
  const clients = [server, other].flatMap((on) =>
    TRANSPORTS.flatMap((transport) => [0, 1, 2].map((n) => watch(transport, { contextIds: [id], after: [{ contextId: id, seq: n % 2 }] }, on))),
  );
  await patch(id, "/c", "x");
  for (const client of clients) await client.until(hasSeq(id, 2), "seq 2");
  expect(await channelSubscribers(server.redis, `${server.config.keyPrefix}:changes`)).toBe(2);
  for (const client of clients) client.close();
});

test("subscribers sharing a pipeline each get their own selection", async () => {
  const id = "shared-selection";
  await create(id);
  const query = (fields: string) => `subscription { contextChanges(contextIds: ["${id}"]) { changes { ${fields} } } }`;
  const bySeq = rawWsSubscription(server.url, query("seq"));
  const byKind = rawWsSubscription(server.url, query("seq kind"));
  const payloads = (raw: RawSubscription<unknown>) => raw.messages.filter((m) => m.type === "next").map((m) => m.payload);
  await Promise.all([bySeq.subscribed, byKind.subscribed]);
  // The subscribe is sent, but the server may not have registered it yet: change the context
  // until both subscribers have seen a change.
  const live = Promise.all([bySeq, byKind].map((raw) => raw.until(() => payloads(raw).length > 0, "a first change")));
  let isLive = false;
  void live.then(() => (isLive = true));
  for (let n = 0; !isLive; n++) await patch(id, "/c", n);
  await live;
  const last = await patch(id, "/c", "last");
  const arrived = (raw: RawSubscription<unknown>) => raw.until(() => JSON.stringify(payloads(raw)).includes(`{"seq":${last.seq}`), `seq ${last.seq}`);
  await Promise.all([arrived(bySeq), arrived(byKind)]);
  // A change made before both were live may still share the last batch: look at every change.
  const changesOf = (raw: RawSubscription<unknown>) =>
    payloads(raw).flatMap((p) => (p as { data: { contextChanges: { changes: Record<string, unknown>[] } } }).data.contextChanges.changes);
  expect(changesOf(bySeq).at(-1)).toEqual({ seq: last.seq });
  expect(changesOf(byKind).at(-1)).toEqual({ seq: last.seq, kind: "UPDATED" });
  expect(changesOf(bySeq).every((c) => Object.keys(c).join() === "seq")).toBe(true);
  expect(changesOf(byKind).every((c) => Object.keys(c).join() === "seq,kind")).toBe(true);
  bySeq.socket.close();
  byKind.socket.close();
});

test("a WebSocket connection may run at most SWARM_MAX_SUBSCRIPTIONS_PER_CONNECTION operations; more are refused with LIMIT_EXCEEDED", async () => {
  const id = "capped";
  await create(id);
  const client = createClient({ url: server.url.replace(/^http/, "ws"), webSocketImpl: WebSocket, retryAttempts: 0 });
  const outcomes: unknown[][] = [[], [], []];
  let allAnswered!: () => void;
  const answered = new Promise<void>((resolve) => (allAnswered = resolve));
  const record = (seen: unknown[], outcome: unknown) => {
    seen.push(outcome);
    if (outcomes.every((s) => s.length > 0)) allAnswered();
  };
  const unsubscribe = outcomes.map((seen) =>
    client.subscribe(
      { query: `subscription { contextChanges(contextIds: ["${id}"], after: [{contextId: "${id}", seq: 0}]) { changes { seq } } }` },
      { next: (v) => record(seen, v), error: (e) => record(seen, { error: e }), complete: () => undefined },
    ),
  );
  await answered;
  expect(outcomes[0]).toEqual([{ data: { contextChanges: { changes: [{ seq: 1 }] } } }]);
  expect(outcomes[1]).toEqual([{ data: { contextChanges: { changes: [{ seq: 1 }] } } }]);
  expect((outcomes[2]![0] as { error: { extensions: unknown }[] }).error[0]!.extensions).toEqual({ code: "LIMIT_EXCEEDED", limit: "operationsPerConnection" });
  unsubscribe.forEach((stop) => stop());
  await client.dispose();
});

test("WebSocket connections are pinged every SWARM_KEEPALIVE_MS, and one that stops answering is cut", async () => {
  const answering = new WebSocket(server.url.replace(/^http/, "ws"), "graphql-transport-ws");
  const silent = new WebSocket(server.url.replace(/^http/, "ws"), "graphql-transport-ws", { autoPong: false });
  let pings = 0;
  answering.on("ping", () => pings++);
  const cut = new Promise<number>((resolve) => silent.on("close", (code) => resolve(code)));
  // keepAliveMs is 100 on this server: the silent one misses its first answer and is cut at the next tick.
  expect(await cut).toBe(1006);
  expect(pings).toBeGreaterThan(0);
  expect(answering.readyState).toBe(WebSocket.OPEN);
  answering.close();
});
