// Wake-ups on a Redis Cluster: classic PUBLISH (every message crosses the cluster bus to every node) against sharded pub/sub (SPUBLISH stays on its shard), published from a script on each swarm's master as the product's scripts do, to subscribers standing for server instances; messages/s and Redis CPU per message on each node; and, for scale, the Redis CPU of a whole patch (its wake-up included).
import calculateSlot from "cluster-key-slot";
import { Cluster, Redis } from "ioredis";
import { loadConfig } from "../src/config.js";
import { closeRedis, connectRedis } from "../src/redis/clients.js";
import { Keys } from "../src/redis/keys.js";
import { ContextStore } from "../src/store/contexts.js";
import { startRedisCluster, type RedisCluster } from "../support/redis-cluster.js";
import { cpuSeconds } from "./proc.js";

/** One way to lay out the wake-ups. */
interface Layout {
  readonly name: string;
  /** What the wake-ups are spread over: one channel, one per swarm, or one per cluster slot (all 16,384, whatever the swarms). */
  readonly channels: "one" | "swarm" | "slot";
  readonly sharded: boolean;
}

export interface WakeupRow {
  readonly layout: string;
  readonly subscribers: number;
  /** Messages published per second, each received by every subscriber. */
  readonly messagesPerSecond: number;
  /** Redis CPU per published message, µs, on each node (masters in slot order). */
  readonly cpuPerMessageUs: readonly number[];
}

const LAYOUTS: readonly Layout[] = [
  { name: "classic PUBLISH, one channel (what the server does)", channels: "one", sharded: false },
  { name: "classic PUBLISH, a channel per swarm", channels: "swarm", sharded: false },
  { name: "sharded SPUBLISH, a channel per swarm", channels: "swarm", sharded: true },
  { name: "sharded SPUBLISH, a channel per slot (16,384, each subscriber on all)", channels: "slot", sharded: true },
];

/** Per cluster slot, a short hash tag in it: the name of that slot's channel. */
function slotTags(): string[] {
  const tags: string[] = new Array(16384);
  let found = 0;
  for (let i = 0; found < tags.length; i++) {
    const slot = calculateSlot(String(i));
    if (tags[slot] === undefined) {
      tags[slot] = String(i);
      found++;
    }
  }
  return tags;
}

/** Swarms the messages come from, spread over the masters by their hash tags. */
const SWARMS = 64;
/** Scripts in flight at once from the publisher. */
const IN_FLIGHT = 1000;

/** CPU time a process has used so far, in µs (10 ms steps). */
const cpuUs = (pid: number): number => cpuSeconds(pid) * 1e6;

/** A subscriber (one server instance) to every channel of `layout`: resolves with a counter once subscribed. */
async function subscriber(cluster: RedisCluster, layout: Layout, channels: string[], index: number): Promise<{ received: () => number; close: () => void }> {
  let received = 0;
  if (layout.sharded) {
    // ioredis 5.9: one connection to each master, each subscribed to the channels of its slots.
    const client = new Cluster(seedsOf(cluster), { shardedSubscribers: true });
    client.on("smessage", () => received++);
    await Promise.all(channels.map((channel) => client.ssubscribe(channel)));
    return { received: () => received, close: () => client.disconnect() };
  }
  // As the server's wake-up connection does: one connection, to any one node (here spread over them).
  const node = cluster.nodes[index % cluster.nodes.length]!;
  const client = new Redis(node.port, "127.0.0.1");
  client.on("message", () => received++);
  await client.subscribe(...channels);
  return { received: () => received, close: () => client.disconnect() };
}

function seedsOf(cluster: RedisCluster): { host: string; port: number }[] {
  return cluster.nodes.map((node) => ({ host: "127.0.0.1", port: node.port }));
}

/** Publishes `messages` wake-ups of `layout` to `subscribers` subscribers; resolves once every one received all. */
async function measure(cluster: RedisCluster, layout: Layout, subscribers: number, messages: number): Promise<WakeupRow> {
  const swarmKey = (swarm: number) => `{ctx:s${swarm}}:meta`;
  const tags = layout.channels === "slot" ? slotTags() : [];
  const channels =
    layout.channels === "one" ? ["bench:changes"] : layout.channels === "swarm" ? Array.from({ length: SWARMS }, (_, i) => `{ctx:s${i}}:changes`) : tags.map((tag) => `{${tag}}:changes`);
  const channelOf = (swarm: number) =>
    layout.channels === "one" ? channels[0]! : layout.channels === "swarm" ? channels[swarm]! : `{${tags[calculateSlot(swarmKey(swarm))]}}:changes`;
  const listening = await Promise.all(Array.from({ length: subscribers }, (_, i) => subscriber(cluster, layout, channels, i)));
  const publisher = new Cluster(seedsOf(cluster), { enableAutoPipelining: true });
  // The product's scripts publish from the swarm's master, after their writes; here the publish alone.
  publisher.defineCommand("wake", { numberOfKeys: 1, lua: `#!lua\nreturn redis.call('${layout.sharded ? "SPUBLISH" : "PUBLISH"}', ARGV[1], ARGV[2])` });
  const wake = (publisher as unknown as { wake(key: string, channel: string, message: string): Promise<number> }).wake.bind(publisher);
  await publisher.ping();
  const pids = cluster.nodes.map((node) => node.process.pid!);
  const cpuBefore = pids.map(cpuUs);
  const started = performance.now();
  for (let sent = 0; sent < messages; ) {
    const batch: Promise<number>[] = [];
    for (; batch.length < IN_FLIGHT && sent < messages; sent++) {
      const swarm = sent % SWARMS;
      batch.push(wake(swarmKey(swarm), channelOf(swarm), `s${swarm} ${sent}`));
    }
    await Promise.all(batch);
  }
  while (listening.some((s) => s.received() < messages)) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = pids.map(cpuUs);
  publisher.disconnect();
  for (const s of listening) s.close();
  return {
    layout: layout.name,
    subscribers,
    messagesPerSecond: messages / seconds,
    cpuPerMessageUs: pids.map((_, i) => (cpuAfter[i]! - cpuBefore[i]!) / messages),
  };
}

/** Patches through the context store for the reference row: a 1 KiB document in each of SWARMS swarms, this many in flight. */
const PATCH_IN_FLIGHT = 64;

/** Redis CPU of `patches` patches of 1 KiB documents through the context store (one server instance, its wake-up subscriber off), per node, µs per patch. */
async function patchCost(cluster: RedisCluster, patches: number, round: number): Promise<WakeupRow> {
  const config = loadConfig([], {});
  const redis = await connectRedis({ clusterNodes: cluster.nodes.map((node) => `127.0.0.1:${node.port}`) }, "bench", config.redisTimeoutMs);
  const store = new ContextStore(redis, new Keys(`patch-cost-${round}`), config);
  const notes = Array.from({ length: 8 }, (_, i) => ({ agent: `agent-${i}`, text: "observation ".repeat(10) }));
  for (let i = 0; i < SWARMS; i++) await store.create(`s${i}`, { n: 0, notes }, { actor: "bench" });
  const pids = cluster.nodes.map((node) => node.process.pid!);
  const cpuBefore = pids.map(cpuUs);
  const started = performance.now();
  let sent = 0;
  await Promise.all(
    Array.from({ length: PATCH_IN_FLIGHT }, async () => {
      while (sent < patches) {
        const n = sent++;
        await store.patch(`s${n % SWARMS}`, [{ op: "replace", path: "/n", value: n }], { actor: "bench" });
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = pids.map(cpuUs);
  await closeRedis(redis, 1_000);
  return { layout: "reference: a whole patch, 1 KiB document, through the context store", subscribers: 0, messagesPerSecond: patches / seconds, cpuPerMessageUs: pids.map((_, i) => (cpuAfter[i]! - cpuBefore[i]!) / patches) };
}

/**
 * Every layout with each number of subscribers, `rounds` times, alternating, on one cluster of
 * three masters (no replicas), and the reference patch cost: the medians per layout and
 * subscriber count.
 */
export async function wakeupsBench(messages: number, subscriberCounts: readonly number[], rounds: number): Promise<WakeupRow[]> {
  const cluster = await startRedisCluster(3, 0);
  const runs = new Map<string, WakeupRow[]>();
  try {
    for (let round = 0; round < rounds; round++) runs.set("reference", [...(runs.get("reference") ?? []), await patchCost(cluster, messages / 5, round)]);
    for (let round = 0; round < rounds; round++) {
      for (const subscribers of subscriberCounts) {
        for (const layout of LAYOUTS) {
          const row = await measure(cluster, layout, subscribers, messages);
          const key = `${layout.name}/${subscribers}`;
          runs.set(key, [...(runs.get(key) ?? []), row]);
        }
      }
    }
  } finally {
    await cluster.stop();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return [...runs.values()].map((rows) => ({
    ...rows[0]!,
    messagesPerSecond: median(rows.map((r) => r.messagesPerSecond)),
    cpuPerMessageUs: rows[0]!.cpuPerMessageUs.map((_, i) => median(rows.map((r) => r.cpuPerMessageUs[i]!))),
  }));
}

/** Prints `rows` as a Markdown table, with what was measured and how. */
export function printWakeups(rows: readonly WakeupRow[], messages: number, rounds: number): void {
  console.log(`\nwake-ups on a Redis Cluster of 3 masters: ${messages} messages from ${SWARMS} swarms, each published by a script on its swarm's master (${IN_FLIGHT} in flight), each received by every subscriber; medians of ${rounds} rounds`);
  console.log("Redis CPU per published message from /proc/<pid>/stat (10 ms ticks), per node and summed\n");
  console.log("The reference row is a whole patch (script, stream entry, snapshot and wake-up) through the context store: patches/s and CPU µs per patch\n");
  console.log("| layout | subscribers | messages/s | CPU µs/message, node 1 / 2 / 3 | CPU µs/message, all nodes |");
  console.log("|---|---:|---:|---:|---:|");
  for (const r of rows) {
    const total = r.cpuPerMessageUs.reduce((a, b) => a + b, 0);
    console.log(`| ${r.layout} | ${r.subscribers || "-"} | ${r.messagesPerSecond.toFixed(0)} | ${r.cpuPerMessageUs.map((us) => us.toFixed(1)).join(" / ")} | ${total.toFixed(1)} |`);
  }
}
