// What SWARM_REDIS_WAIT_REPLICAS=1 costs, on one Redis Cluster of three masters with a replica each: write throughput and latency of two servers, one acknowledging writes once their master applied them, the other once a replica confirmed them (WAIT), measured back to back; and the same for the context store alone (no HTTP or GraphQL), one write at a time and many at once.
import { loadConfig } from "../src/config.js";
import { closeRedis, connectRedis } from "../src/redis/clients.js";
import { Keys } from "../src/redis/keys.js";
import { ContextStore } from "../src/store/contexts.js";
import { startRedisCluster, type RedisCluster } from "../support/redis-cluster.js";

/** A GraphQL request of a chain each load connection sends in a loop (run.ts Step). */
interface Step {
  query: string;
  variablesFrom?: (state: Record<string, unknown>) => unknown;
  keep?: (body: any, state: Record<string, unknown>) => void;
}

interface Measured {
  rps: number;
  p50: number;
  p99: number;
  failures: number;
}

/** run.ts's load and serveScript, passed in: that file runs when imported. */
export interface WaitBenchTools {
  load(scenario: string, url: string, steps: Step[]): Promise<Measured>;
  serve(env: Record<string, string>): Promise<{ url: string; stop(): void }>;
  post(url: string, query: string, variables?: unknown): Promise<any>;
}

export interface WaitRow {
  scenario: string;
  /** Per WAIT setting (0, 1), the medians over rounds. */
  byWait: Measured[];
  /** req/s with WAIT=1 / without, per round. */
  ratios: number[];
}

/** The context store's patches alone, per WAIT setting (0, 1): medians over rounds. */
export interface StoreRow {
  /** One patch at a time: latency, ms. */
  sequentialP50: number;
  sequentialP99: number;
  /** STORE_IN_FLIGHT patches at a time: patches/s. */
  concurrentPerSecond: number;
}

/** Patches one at a time, and patches kept in flight at once, per store round. */
const STORE_SEQUENTIAL = 500;
const STORE_CONCURRENT = 10_000;
const STORE_IN_FLIGHT = 64;

/** Swarms the load spreads over, by hash tag over the three masters. */
const SWARMS = 64;

/**
 * Patches, and allocate + release pairs, over SWARMS swarms, against a server with
 * SWARM_REDIS_WAIT_REPLICAS=0 and one with 1 on the same cluster (own key prefixes), alternating
 * within each of `rounds` rounds.
 */
export async function waitReplicasBench(tools: WaitBenchTools, rounds: number): Promise<{ http: WaitRow[]; store: StoreRow[] }> {
  const cluster = await startRedisCluster(3, 1);
  const servers: { url: string; stop(): void }[] = [];
  try {
    const store = await storeBench(cluster, rounds);
    for (const wait of [0, 1]) {
      const server = await tools.serve({ REDIS_CLUSTER_NODES: cluster.seeds, SWARM_REDIS_WAIT_REPLICAS: String(wait), BENCH_KEY_PREFIX: `wait${wait}` });
      servers.push(server);
      for (let i = 0; i < SWARMS; i++) {
        const created = await tools.post(server.url, "mutation($id: ID!, $d: JSON!) { createContext(id: $id, document: $d) { version } }", {
          id: `w-${i}`,
          d: { n: 0, resources: { limits: { credits: 1e12 } } },
        });
        if (created.errors) throw new Error(`seeding w-${i}: ${JSON.stringify(created.errors)}`);
      }
    }
    let value = 0;
    let next = 0;
    const swarmOf = (state: Record<string, unknown>) => (state.swarm ??= `w-${next++ % SWARMS}`);
    const scenarios: [string, Step[]][] = [
      [
        `patchContext, ${SWARMS} swarms`,
        [
          {
            query: 'mutation($id: ID!, $v: JSON) { patchContext(id: $id, patch: [{op: replace, path: "/n", value: $v}]) { version } }',
            variablesFrom: (state) => ({ id: swarmOf(state), v: ++value }),
          },
        ],
      ],
      [
        `allocate + release, ${SWARMS} swarms`,
        [
          {
            query: 'mutation($id: ID!) { allocate(contextId: $id, request: [{kind: "credits", amount: 10}], mode: EXACT) { id } }',
            variablesFrom: (state) => ({ id: swarmOf(state) }),
            keep: (body, state) => (state.allocationId = body.data?.allocate?.id),
          },
          {
            query: 'mutation($a: ID!) { release(allocationId: $a, usage: [{kind: "credits", amount: 1}]) { status } }',
            variablesFrom: (state) => ({ a: state.allocationId }),
          },
        ],
      ],
    ];
    const runs = new Map<string, Measured[][]>(scenarios.map(([name]) => [name, [[], []]]));
    for (let round = 0; round < rounds; round++) {
      for (const [name, steps] of scenarios) {
        for (const [wait, server] of servers.entries()) runs.get(name)![wait]!.push(await tools.load(`${name}, WAIT=${wait}`, server.url, steps));
      }
    }
    const http = [...runs].map(([scenario, [without, withWait]]) => ({
      scenario,
      byWait: [without!, withWait!].map((ms) => ({
        rps: median(ms.map((m) => m.rps)),
        p50: median(ms.map((m) => m.p50)),
        p99: median(ms.map((m) => m.p99)),
        failures: ms.reduce((sum, m) => sum + m.failures, 0),
      })),
      ratios: withWait!.map((m, i) => m.rps / without![i]!.rps),
    }));
    return { http, store };
  } finally {
    for (const server of servers) server.stop();
    await cluster.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The context store on its own Redis connection per WAIT setting (0, 1), patching SWARMS swarms; the settings alternate within each round. */
async function storeBench(cluster: RedisCluster, rounds: number): Promise<StoreRow[]> {
  const config = loadConfig([], {});
  const stores = [];
  for (const wait of [0, 1]) {
    const redis = await connectRedis({ clusterNodes: cluster.seeds.split(",") }, "bench", config.redisTimeoutMs, wait);
    const store = new ContextStore(redis, new Keys(`store${wait}`), config);
    for (let i = 0; i < SWARMS; i++) await store.create(`w-${i}`, { n: 0 }, { actor: "bench" });
    stores.push({ redis, store });
  }
  let value = 0;
  const patch = (store: ContextStore, i: number) => store.patch(`w-${i % SWARMS}`, [{ op: "replace", path: "/n", value: ++value }], { actor: "bench" });
  const runs: StoreRow[][] = [[], []];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [wait, { store }] of stores.entries()) {
        const latencies: number[] = [];
        for (let i = 0; i < STORE_SEQUENTIAL; i++) {
          const started = performance.now();
          await patch(store, i);
          latencies.push(performance.now() - started);
        }
        latencies.sort((a, b) => a - b);
        const started = performance.now();
        let sent = 0;
        await Promise.all(
          Array.from({ length: STORE_IN_FLIGHT }, async () => {
            while (sent < STORE_CONCURRENT) await patch(store, sent++);
          }),
        );
        runs[wait]!.push({
          sequentialP50: latencies[Math.floor(latencies.length * 0.5)]!,
          sequentialP99: latencies[Math.floor(latencies.length * 0.99)]!,
          concurrentPerSecond: STORE_CONCURRENT / ((performance.now() - started) / 1000),
        });
      }
    }
  } finally {
    for (const { redis } of stores) await closeRedis(redis, 1_000);
  }
  return runs.map((rows) => ({
    sequentialP50: median(rows.map((r) => r.sequentialP50)),
    sequentialP99: median(rows.map((r) => r.sequentialP99)),
    concurrentPerSecond: median(rows.map((r) => r.concurrentPerSecond)),
  }));
}

/** Prints both parts as Markdown tables, with what was measured and how. */
export function printWaitReplicas({ http, store }: { http: readonly WaitRow[]; store: readonly StoreRow[] }, connections: number, seconds: number, rounds: number): void {
  console.log(`\nSWARM_REDIS_WAIT_REPLICAS, the context store alone (no HTTP, no GraphQL) on a Redis Cluster of 3 masters with a replica each: patches of ${SWARMS} swarms, ${STORE_SEQUENTIAL} one at a time, then ${STORE_CONCURRENT} with ${STORE_IN_FLIGHT} in flight; medians of ${rounds} rounds\n`);
  console.log("| WAIT | one at a time: p50 ms | p99 ms | 64 in flight: patches/s |");
  console.log("|---:|---:|---:|---:|");
  for (const [wait, r] of store.entries()) console.log(`| ${wait} | ${r.sequentialP50.toFixed(2)} | ${r.sequentialP99.toFixed(2)} | ${r.concurrentPerSecond.toFixed(0)} |`);
  console.log(`\nSWARM_REDIS_WAIT_REPLICAS on a Redis Cluster of 3 masters with a replica each: ${connections} connections, ${seconds} s per scenario, medians of ${rounds} rounds, both servers on the same cluster`);
  console.log("req/s counts requests (an allocate + release pair is two); 2 cores shared by the server, 6 redis-servers and the load generator\n");
  console.log("| scenario | WAIT=0 req/s | p50 ms | p99 ms | failures | WAIT=1 req/s | p50 ms | p99 ms | failures | WAIT=1 / WAIT=0 req/s (median; per round) |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of http) {
    const cells = r.byWait.flatMap((m) => [m.rps.toFixed(0), String(m.p50), String(m.p99), String(m.failures)]);
    const sorted = [...r.ratios].sort((a, b) => a - b);
    console.log(`| ${r.scenario} | ${cells.join(" | ")} | ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)} (${r.ratios.map((x) => x.toFixed(2)).join(", ")}) |`);
  }
}
