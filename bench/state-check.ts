// The state guard's cost (BENCH_ONLY=state-check): the check every operation makes (StateGuard.whenIntact) on one Redis and on a Redis Cluster, in ns per call beside an empty call, and on a 3-master cluster the periodic check's Redis commands per second, the masters' CPU and one check's duration, for N hash slots watched.
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { connectRedis, type RedisClient } from "../src/redis/clients.js";
import { CLUSTER_SLOTS, Keys } from "../src/redis/keys.js";
import { StateGuard } from "../src/redis/state-guard.js";
import { startRedisCluster, type RedisCluster } from "../support/redis-cluster.js";

const HOT_CALLS = 2_000_000;
const CHECK_MS = 1_000;
const WINDOW_MS = 5_000;

export interface HotPathRow {
  readonly setup: string;
  readonly nsPerCall: number;
}

export interface PeriodicRow {
  /** Hash slots the guard watches (its own and the deployment-wide keys' included). */
  readonly slots: number;
  readonly commandsPerSecond: number;
  readonly getsPerSecond: number;
  /** CPU of the three masters together, ms per second. */
  readonly cpuMsPerSecond: number;
  /** CPU of this process (the instance's checks, and the measurement's few INFO calls), ms per second. */
  readonly instanceCpuMsPerSecond: number;
  /** Median duration of one periodic check, ms. */
  readonly checkMs: number;
}

const median = (xs: readonly number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN;

async function openGuard(redis: RedisClient, prefix: string, checkMs: number, rounds: number[] = []): Promise<StateGuard> {
  return StateGuard.open(redis, new Keys(prefix), checkMs, { changed: () => undefined, roundTripMs: (ms) => rounds.push(ms) });
}

/** ns per call of `call`, over HOT_CALLS calls (after as many to warm up). */
function nsPerCall(call: (i: number) => unknown): number {
  let sink = 0;
  for (let i = 0; i < HOT_CALLS; i++) sink += call(i) === undefined ? 0 : 1;
  const started = process.hrtime.bigint();
  for (let i = 0; i < HOT_CALLS; i++) sink += call(i) === undefined ? 0 : 1;
  const ns = Number(process.hrtime.bigint() - started) / HOT_CALLS;
  if (sink !== 0) throw new Error("a check was not intact");
  return ns;
}

/** The check of an operation on a context whose state is intact: one Redis, then a cluster (1,000 swarms' ids). */
export async function hotPath(redisUrl: string, cluster: RedisCluster): Promise<HotPathRow[]> {
  const ids = Array.from({ length: 1000 }, (_, i) => `swarm-${i}`);
  const noop = (_i: number): undefined => undefined;
  const rows: HotPathRow[] = [{ setup: "an empty call", nsPerCall: nsPerCall(noop) }];
  const one = await connectRedis({ url: redisUrl }, "bench-state-check");
  const clustered = await connectRedis({ clusterNodes: cluster.seeds.split(",") }, "bench-state-check");
  try {
    const single = await openGuard(one, `bench-${randomUUID()}`, 3_600_000);
    rows.push({ setup: "whenIntact([id]), one Redis", nsPerCall: nsPerCall((i) => single.whenIntact([ids[i % ids.length]!])) });
    single.close();
    const sharded = await openGuard(clustered, `bench-${randomUUID()}`, 3_600_000);
    await Promise.all(ids.map((id) => sharded.whenIntact([id])));
    rows.push({ setup: "whenIntact([id]), 3-master cluster", nsPerCall: nsPerCall((i) => sharded.whenIntact([ids[i % ids.length]!])) });
    sharded.close();
  } finally {
    one.disconnect();
    clustered.disconnect();
  }
  return rows;
}

/** Commands (all but INFO and CLUSTER) and GETs run so far, and CPU seconds used, summed over `masters`. */
async function counters(masters: readonly Redis[]): Promise<{ commands: number; gets: number; cpuS: number }> {
  let commands = 0;
  let gets = 0;
  let cpuS = 0;
  for (const master of masters) {
    const stats = await master.info("commandstats");
    for (const [, name, calls] of stats.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
      if (name === "info" || name!.startsWith("cluster")) continue;
      commands += Number(calls);
      if (name === "get") gets += Number(calls);
    }
    const cpu = await master.info("cpu");
    cpuS += Number(/used_cpu_sys:([\d.]+)/.exec(cpu)![1]) + Number(/used_cpu_user:([\d.]+)/.exec(cpu)![1]);
  }
  return { commands, gets, cpuS };
}

/** One guard watching about `slots` slots on `cluster`, checking every CHECK_MS: what its checks cost the masters over WINDOW_MS. */
export async function periodic(cluster: RedisCluster, slots: number): Promise<PeriodicRow> {
  const clustered = await connectRedis({ clusterNodes: cluster.seeds.split(",") }, "bench-state-check");
  const masters = cluster.nodes.map((node) => new Redis(node.port, "127.0.0.1"));
  const rounds: number[] = [];
  try {
    const keys = new Keys(`bench-${randomUUID()}`);
    const guard = await openGuard(clustered, keys.prefix, CHECK_MS, rounds);
    const step = CLUSTER_SLOTS / Math.max(1, slots);
    // Touched a thousand at a time, as operations would: each first touch waits for its slot's check.
    for (let from = 0; from < slots; from += 1000) {
      const to = Math.min(slots, from + 1000);
      await Promise.all(Array.from({ length: to - from }, (_, i) => guard.whenKeysIntact([keys.slotEpoch(Math.floor((from + i) * step))])));
    }
    // Besides these, the guard watches the slots of <prefix>:epoch and Keys.globalKeys: the registry counts them all.
    const watched = await clustered.bitcount(keys.epochRegistry(0));
    rounds.length = 0;
    const before = await counters(masters);
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
    const cpu = process.cpuUsage(cpuBefore);
    const after = await counters(masters);
    const seconds = (performance.now() - started) / 1000;
    guard.close();
    return {
      slots: watched,
      commandsPerSecond: (after.commands - before.commands) / seconds,
      getsPerSecond: (after.gets - before.gets) / seconds,
      cpuMsPerSecond: ((after.cpuS - before.cpuS) * 1000) / seconds,
      instanceCpuMsPerSecond: (cpu.user + cpu.system) / 1000 / seconds,
      checkMs: median(rounds),
    };
  } finally {
    clustered.disconnect();
    for (const master of masters) master.disconnect();
  }
}

/** Both measurements, on `redisUrl` and a 3-master cluster started and stopped here. */
export async function stateCheckBench(redisUrl: string, slotCounts: readonly number[]): Promise<{ hot: HotPathRow[]; periodic: PeriodicRow[] }> {
  const cluster = await startRedisCluster(3);
  try {
    const hot = await hotPath(redisUrl, cluster);
    const rows: PeriodicRow[] = [];
    for (const slots of slotCounts) rows.push(await periodic(cluster, slots));
    return { hot, periodic: rows };
  } finally {
    await cluster.stop();
  }
}

export function printStateCheck(result: { hot: HotPathRow[]; periodic: PeriodicRow[] }): void {
  console.log("\nstate guard: the check of every operation (whenIntact on a context whose state is intact)");
  for (const row of result.hot) console.log(`  ${row.setup.padEnd(40)} ${row.nsPerCall.toFixed(1)} ns per call`);
  console.log(`state guard: periodic checks on a 3-master cluster, one instance, every ${CHECK_MS} ms, measured over ${WINDOW_MS / 1000} s`);
  console.log("  slots watched   commands/s   GETs/s   masters' CPU ms/s   instance CPU ms/s   one check (median ms)");
  for (const row of result.periodic) {
    console.log(
      `  ${String(row.slots).padStart(13)}   ${row.commandsPerSecond.toFixed(0).padStart(10)}   ${row.getsPerSecond.toFixed(0).padStart(6)}   ${row.cpuMsPerSecond.toFixed(1).padStart(17)}   ${row.instanceCpuMsPerSecond.toFixed(1).padStart(17)}   ${row.checkMs.toFixed(1).padStart(21)}`,
    );
  }
}
