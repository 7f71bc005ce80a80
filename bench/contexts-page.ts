// The latency of one `contexts` page (50 contexts and the totalCount, as the console's overview asks; the store's calls in process, one request at a time), and the Redis commands it runs, by id and by update time, on one Redis (one index shard) and on a Redis Cluster of three masters (CLUSTER_INDEX_SHARDS shards, and one shard for comparison), the deployments measured in turn in each round.
import { Cluster } from "ioredis";
import { loadConfig } from "../src/config.js";
import { closeRedis, connectRedis, type RedisClient, type RedisTarget } from "../src/redis/clients.js";
import { CLUSTER_INDEX_SHARDS, Keys } from "../src/redis/keys.js";
import { ContextStore, type ContextOrder, type ListQuery } from "../src/store/contexts.js";
import { startRedisCluster } from "../support/redis-cluster.js";

const CONTEXTS = Number(process.env.BENCH_PAGE_CONTEXTS ?? 10_000);
const REQUESTS = Number(process.env.BENCH_PAGE_REQUESTS ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** "0": one Redis only (no cluster is started). */
const WITH_CLUSTER = process.env.BENCH_PAGE_CLUSTER !== "0";
const PAGE = 50;
const ORDERS: readonly ContextOrder[] = ["ID", "UPDATED_AT_DESC"];
const EVERYTHING: ListQuery = { idPrefix: null, updatedAfter: null, visible: () => true };

export interface ContextsPageRow {
  deployment: string;
  order: ContextOrder;
  /** Per round, ms. */
  p50s: number[];
  p99s: number[];
  /** Commands Redis ran per page (scripts' own calls included), per round. */
  commands: number[];
}

interface Deployment {
  name: string;
  redis: RedisClient;
  store: ContextStore;
}

/** A deployment of CONTEXTS contexts `ov-000000`... with its indexes in `shards` shards, seeded through the store. */
async function deployment(name: string, target: RedisTarget, shards: number): Promise<Deployment> {
  const redis = await connectRedis(target, "bench-contexts-page");
  const store = new ContextStore(redis, new Keys(`page-${shards}`, shards), loadConfig([], {}));
  let next = 0;
  const worker = async () => {
    while (next < CONTEXTS) {
      const n = next++;
      await store.create(`ov-${String(n).padStart(6, "0")}`, { metadata: { n } }, { actor: "bench" });
    }
  };
  await Promise.all(Array.from({ length: 200 }, worker));
  return { name, redis, store };
}

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const median = (values: readonly number[]) => percentile([...values].sort((a, b) => a - b), 0.5);

/** Commands Redis has run so far (INFO commandstats; every master of a cluster). */
async function commandsRun(redis: RedisClient): Promise<number> {
  let calls = 0;
  for (const node of redis instanceof Cluster ? redis.nodes("master") : [redis]) {
    for (const [, n] of (await node.info("commandstats")).matchAll(/calls=(\d+)/g)) calls += Number(n);
  }
  return calls;
}

/**
 * REQUESTS first pages in `order`, one at a time, each its list then its count (as the resolver
 * does): p50 and p99 in ms, and the commands Redis ran per page.
 */
async function pages({ redis, store }: Deployment, order: ContextOrder): Promise<{ p50: number; p99: number; commands: number }> {
  const before = await commandsRun(redis);
  const times: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const started = performance.now();
    const page = await store.list(PAGE, null, order, EVERYTHING);
    const total = await store.count(EVERYTHING, "all");
    times.push(performance.now() - started);
    if (page.contexts.length !== PAGE || total !== CONTEXTS) throw new Error(`a page of ${page.contexts.length} of ${total} contexts`);
  }
  const commands = (await commandsRun(redis)) - before;
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99), commands: commands / REQUESTS };
}

/** Runs the benchmark: one Redis at `redisUrl`, and (unless BENCH_PAGE_CLUSTER=0) a 3-master cluster it starts and stops. */
export async function contextsPage(redisUrl: string): Promise<ContextsPageRow[]> {
  const cluster = WITH_CLUSTER ? await startRedisCluster(3) : null;
  const deployments: Deployment[] = [];
  try {
    deployments.push(await deployment("one Redis, 1 shard", { url: redisUrl }, 1));
    if (cluster) {
      const target = { clusterNodes: cluster.seeds.split(",") };
      deployments.push(await deployment(`3-master cluster, ${CLUSTER_INDEX_SHARDS} shards`, target, CLUSTER_INDEX_SHARDS));
      deployments.push(await deployment("3-master cluster, 1 shard (comparison)", target, 1));
    }
    const rows = deployments.flatMap((d) => ORDERS.map((order): ContextsPageRow => ({ deployment: d.name, order, p50s: [], p99s: [], commands: [] })));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, d] of deployments.entries()) {
        for (const [j, order] of ORDERS.entries()) {
          const { p50, p99, commands } = await pages(d, order);
          const row = rows[i * ORDERS.length + j]!;
          row.p50s.push(p50);
          row.p99s.push(p99);
          row.commands.push(commands);
        }
      }
    }
    return rows;
  } finally {
    await Promise.all(deployments.map((d) => closeRedis(d.redis, 1_000)));
    await cluster?.stop();
  }
}

export function printContextsPage(rows: readonly ContextsPageRow[]): void {
  console.log(`\ncontexts page: first ${PAGE} of ${CONTEXTS} contexts and totalCount (ContextStore.list then count, in process), ${REQUESTS} requests one at a time per round, medians of ${ROUNDS} rounds; ratio = p50 / p50 on one Redis, same order\n`);
  console.log("| deployment | order | p50 ms (median; per round) | p99 ms | p50 ratio | Redis commands per page |");
  console.log("|---|---|---:|---:|---:|---:|");
  for (const row of rows) {
    const base = rows.find((r) => r.order === row.order)!;
    const p50 = median(row.p50s);
    console.log(
      `| ${row.deployment} | ${row.order} | ${p50.toFixed(2)} (${row.p50s.map((p) => p.toFixed(2)).join(", ")}) | ${median(row.p99s).toFixed(2)} | ${(p50 / median(base.p50s)).toFixed(2)} | ${median(row.commands).toFixed(1)} |`,
    );
  }
}
