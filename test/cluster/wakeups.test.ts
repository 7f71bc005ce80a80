// Proves that on a Redis Cluster a lost wake-up subscription costs latency, never changes: when the feed's pub/sub connection is killed (CLIENT KILL), the server subscribes again and its subscribers, by prefix and by id, get every change once, in order, including those committed while nobody was subscribed.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ContextChangesDocument, CreateContextDocument, GetHistoryDocument, PatchContextDocument, type ContextChangesSubscription } from "../gql/graphql.js";
import { useTestServer, type GraphQLResponse } from "../helpers/app.js";
import { Backoff } from "../helpers/backoff.js";
import { ClusterNodes } from "../helpers/cluster-nodes.js";
import { subscribe, type FeedClient } from "../helpers/feed-client.js";
import { Keys } from "../../src/redis/keys.js";
import { startRedisCluster, type RedisCluster } from "../../support/redis-cluster.js";
import type { RedisServer } from "../../support/redis-server.js";

type Feed = FeedClient<ContextChangesSubscription>;

let cluster: RedisCluster;
let nodes: ClusterNodes;
beforeAll(async () => {
  cluster = await startRedisCluster(3, 1);
  nodes = new ClusterNodes(cluster);
});
afterAll(async () => {
  nodes?.close();
  await cluster?.stop();
});
const server = useTestServer(() => ({ redisClusterNodes: cluster.seeds }));

/** Contexts on every master (asserted below). */
const IDS = Array.from({ length: 9 }, (_, i) => `w-${i}`);
let changes: string;
/** Per context, the opIds written so far: a retry of the last one after UNAVAILABLE is safe. */
const written = new Map<string, number>();

beforeAll(async () => {
  const keys = new Keys(server.config.keyPrefix);
  changes = keys.changesChannel;
  const masters = new Set<number>();
  for (const id of IDS) {
    await server.data(CreateContextDocument, { id, document: { n: 0 } });
    masters.add((await cluster.masterOf(await nodes.call<number>(cluster.nodes[0]!, "CLUSTER", "KEYSLOT", keys.context(id).meta))).port);
  }
  expect(masters.size).toBe(3);
});

/** One more change to `id`, retried with the same opId while the cluster fails over. */
async function patch(id: string): Promise<void> {
  const n = (written.get(id) ?? 0) + 1;
  written.set(id, n);
  const backoff = new Backoff(10, 200);
  for (let attempt = 0; ; attempt++) {
    const res: GraphQLResponse<unknown> = await server.request(PatchContextDocument, { id, patch: [{ op: "replace" as never, path: "/n", value: n }], opId: `${id}-${n}` });
    if (!res.errors) return;
    if (res.errors[0]?.extensions?.code !== "UNAVAILABLE" || attempt === 100) throw new Error(`patch ${id} #${n}: ${JSON.stringify(res.errors)}`);
    await backoff.wait();
  }
}

/** The node the server's wake-up subscription is on, once there is exactly one. */
async function subscribedNode(): Promise<RedisServer> {
  const backoff = new Backoff(5, 100);
  for (;;) {
    const found = await nodes.subscribed(changes);
    if (found.length === 1 && found[0]!.count === 1) return found[0]!.node;
    await backoff.wait();
  }
}

const seqsOf = (feed: Feed, id: string) => feed.values.flatMap((v) => v.contextChanges.changes).filter((c) => c.contextId === id).map((c) => c.seq);

/** Waits until both feeds hold every change of every context, then checks each got each exactly once, in order. */
async function deliveredOnce(feeds: readonly Feed[]): Promise<void> {
  const history = new Map<string, number[]>();
  for (const id of IDS) {
    const { context } = await server.data(GetHistoryDocument, { id, limit: 1000 });
    history.set(id, context!.history.map((h) => h.seq));
  }
  for (const feed of feeds) {
    await feed.until((f) => IDS.every((id) => seqsOf(f, id).at(-1) === history.get(id)!.at(-1)), "every change of every context");
    for (const id of IDS) expect(seqsOf(feed, id), id).toEqual(history.get(id));
    expect(feed.errors).toEqual([]);
  }
}

describe("the wake-up subscription on a cluster", () => {
  let feeds: Feed[];
  beforeAll(async () => {
    const after = IDS.map((contextId) => ({ contextId, seq: 0 }));
    feeds = [
      subscribe("ws", server.url, ContextChangesDocument, { idPrefix: "w-", after }),
      subscribe("sse", server.url, ContextChangesDocument, { contextIds: IDS, after }),
    ];
    await deliveredOnce(feeds);
  });
  afterAll(() => {
    for (const feed of feeds) feed.close();
  });

  test("CLIENT KILL of its connection: changes committed before it subscribes again are delivered", async () => {
    // A round proves something only if every write of it was committed while nobody was
    // subscribed (there is still no subscriber after the last one), so that no later wake-up
    // could announce it: then only catching up after the new subscription delivers it.
    let proving = 0;
    for (let round = 0; round < 10 && proving < 2; round++) {
      const node = await subscribedNode();
      expect(Number(await nodes.call(node, "CLIENT", "KILL", "TYPE", "pubsub"))).toBe(1);
      await Promise.all(IDS.map((id) => patch(id)));
      if ((await nodes.subscribed(changes)).length === 0) proving++;
      await deliveredOnce(feeds);
    }
    expect(proving).toBeGreaterThan(0);
  });
});
