// Proves that on a Redis Cluster a lost wake-up subscription costs latency, never changes: when the feed's pub/sub connection is killed (CLIENT KILL), or the master it is on is (SIGKILL, then failover), the server subscribes again, on another node if need be, and its subscribers, by prefix and by id, get every change once, in order, including those committed while nobody was subscribed.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ContextChangesDocument, CreateContextDocument, GetHistoryDocument, PatchContextDocument, type ContextChangesSubscription } from "../gql/graphql.js";
import { useTestServer, type GraphQLResponse } from "../helpers/app.js";
import { Backoff } from "../helpers/backoff.js";
import { useRedisCluster } from "../helpers/cluster-nodes.js";
import { subscribe, type FeedClient } from "../helpers/feed-client.js";
import { Keys } from "../../src/redis/keys.js";
import type { RedisServer } from "../../support/redis-server.js";

type Feed = FeedClient<ContextChangesSubscription>;

const own = useRedisCluster(3, 1);
// Acknowledged writes are on a replica too, so that killing a master loses none of them.
const server = useTestServer(() => ({ redisClusterNodes: own.cluster.seeds, redisWaitReplicas: 1 }));

/** Contexts on every master (asserted below). */
const IDS = Array.from({ length: 9 }, (_, i) => `w-${i}`);
let keys: Keys;
let changes: string;
/** Per context, the port of its master. */
const masters = new Map<string, number>();
/** Per context, the number of its last patch (opId `<id>-<n>`): a retry of it after UNAVAILABLE is safe. */
const written = new Map<string, number>();

beforeAll(async () => {
  keys = new Keys(server.config.keyPrefix);
  changes = keys.changesChannel;
  for (const id of IDS) {
    await server.data(CreateContextDocument, { id, document: { n: 0 } });
    masters.set(id, (await own.cluster.masterOf(await own.nodes.call<number>(own.cluster.nodes[0]!, "CLUSTER", "KEYSLOT", keys.context(id).meta))).port);
  }
  expect(new Set(masters.values()).size).toBe(3);
});

/** One more change to `id`, retried with the same opId while the cluster fails over. */
async function patch(id: string): Promise<void> {
  const n = (written.get(id) ?? 0) + 1;
  written.set(id, n);
  const backoff = new Backoff(10, 250);
  for (let attempt = 1; ; attempt++) {
    const res: GraphQLResponse<unknown> = await server.request(PatchContextDocument, { id, patch: [{ op: "replace" as never, path: "/n", value: n }], opId: `${id}-${n}` });
    if (!res.errors) return;
    // About 50 s of retries: far past a failover's few seconds.
    if (res.errors[0]?.extensions?.code !== "UNAVAILABLE" || attempt === 200) throw new Error(`patch ${id} #${n}: ${JSON.stringify(res.errors)}`);
    await backoff.wait();
  }
}

/**
 * Runs `run` while no node lets the default user SUBSCRIBE (ACL), then lets it again: the changes
 * `run` commits once the server's subscription is gone (it checks that none is left) are announced
 * to nobody, so only catching up after the next subscription can deliver them.
 */
async function withoutSubscriptions(run: () => Promise<void>): Promise<void> {
  const live = async () => (await Promise.all(own.cluster.nodes.map(async (node) => ((await own.nodes.call(node, "PING").catch(() => null)) ? node : null)))).filter((n) => n !== null);
  for (const node of await live()) await own.nodes.call(node, "ACL", "SETUSER", "default", "-subscribe");
  try {
    await run();
    expect(await own.nodes.subscribed(changes), "subscriptions while they were refused").toEqual([]);
  } finally {
    for (const node of await live()) await own.nodes.call(node, "ACL", "SETUSER", "default", "+subscribe");
  }
}

/** The node the server's wake-up subscription is on, once there is exactly one. */
async function subscribedNode(): Promise<RedisServer> {
  const backoff = new Backoff(5, 100);
  for (;;) {
    const found = await own.nodes.subscribed(changes);
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

describe("the wake-up subscription on a own.cluster", () => {
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
    for (let round = 0; round < 2; round++) {
      const node = await subscribedNode();
      await withoutSubscriptions(async () => {
        expect(Number(await own.nodes.call(node, "CLIENT", "KILL", "TYPE", "pubsub"))).toBe(1);
        await Promise.all(IDS.map((id) => patch(id)));
      });
      await deliveredOnce(feeds);
    }
  });

  test("SIGKILL of the master it is on: it subscribes on another node, and the changes made meanwhile, and through the failover, are delivered", async () => {
    // Onto a master: each kill of its connection moves it to the next node it knows.
    let node = await subscribedNode();
    for (let moves = 0; !(await own.nodes.isMaster(node)); moves++) {
      expect(moves, "moves to reach a master").toBeLessThan(2 * own.cluster.nodes.length);
      await own.nodes.call(node, "CLIENT", "KILL", "TYPE", "pubsub");
      node = await subscribedNode();
    }
    const victim = node;
    const slot = await own.nodes.call<number>(victim, "CLUSTER", "KEYSLOT", keys.context(IDS.find((id) => masters.get(id) === victim.port)!).meta);
    await withoutSubscriptions(async () => {
      await victim.kill();
      // The swarms of the other masters change at once; the dead master's wait for its replica.
      await Promise.all(IDS.filter((id) => masters.get(id) !== victim.port).map((id) => patch(id)));
    });
    const backoff = new Backoff(50, 250);
    while ((await own.cluster.masterOf(slot)) === victim) await backoff.wait();
    expect(await subscribedNode()).not.toBe(victim);
    // Back as a replica of the promoted master: its swarms' writes wait for one (SWARM_REDIS_WAIT_REPLICAS=1).
    await victim.restart();
    await Promise.all(IDS.map((id) => patch(id)));
    await deliveredOnce(feeds);
  });
});
