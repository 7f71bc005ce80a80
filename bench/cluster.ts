// `BENCH_ONLY=cluster npm run bench`: many swarms under a mixed load of patchContext and allocate+release, on one redis-server and on a 3-master Redis Cluster in the same run, through one and two server instances, with the CPU each Redis node and each server spent per request; then what one PUBLISH costs every node of the cluster.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import autocannon from "autocannon";
import { Redis } from "ioredis";
import { Keys } from "../src/redis/keys.js";
import { startRedisCluster } from "../support/redis-cluster.js";
import { startRedisServer, type RedisServer } from "../support/redis-server.js";
import { cpuSeconds } from "./proc.js";

/** A server under benchmark in a process of its own (run.ts serveScript). */
export interface Served {
  url: string;
  pid: number;
  stop(): void;
}

/** Starts `bench/serve.ts app` with `env` added to the bench's own. */
export type ServeApp = (env: Record<string, string>) => Promise<Served>;

export interface ClusterBenchOptions {
  /** Swarms per deployment, each with its own budget. */
  swarms: number;
  /** Client connections in every configuration, split evenly over its server instances. */
  connections: number;
  durationS: number;
  rounds: number;
  /** PUBLISHes sent to one node to price what a wake-up costs each node. */
  publishes: number;
}

/** CPU time of one process over a measured run, in seconds, and per 1,000 requests. */
export interface CpuFigure {
  name: string;
  cpuS: number;
  /** Requests of the run; for a server instance, those it served. */
  requests: number;
  /** CPU s per 1,000 of `requests`. */
  per1000: number;
}

export interface NodeFigure extends CpuFigure {
  /** Swarms whose keys live on this node. */
  swarms: number;
  /** Commands the node processed per request, those scripts ran included (INFO stats total_commands_processed). */
  commandsPerRequest: number;
  /**
   * Reads from client sockets per request (INFO stats total_reads_processed): each brings one
   * auto-pipelined batch, so fewer reads per request mean larger batches.
   */
  readsPerRequest: number;
  /** PUBLISH messages the node received over the cluster bus, per request (CLUSTER INFO). */
  busPublishesPerRequest: number;
}

/** One measured run of one configuration. */
export interface ClusterSample {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  failures: number;
  nodes: NodeFigure[];
  servers: CpuFigure[];
  loadGenerator: CpuFigure;
}

export interface ClusterRow {
  deployment: string;
  instances: number;
  samples: ClusterSample[];
  /** req/s / the one redis-server's req/s with as many instances, per round. */
  ratios?: number[];
}

export interface PublishCost {
  deployment: string;
  /** CPU µs per PUBLISH on each node; the first is the one the PUBLISHes were sent to. */
  microsPerPublish: number[];
}

export interface ClusterReport {
  options: ClusterBenchOptions;
  /** The machine's 1-minute load average and cores when the part began, before any of its load. */
  machine: { loadAverage: number; cores: number };
  rows: ClusterRow[];
  /** Per deployment: acknowledged writes against what the swarms show, via the API. */
  checks: string[];
  publishCost: PublishCost[];
}


/** A numeric field of an INFO-style `name:value` reply. */
function infoField(info: string, name: string): number {
  const match = new RegExp(`^${name}:(\\d+)`, "m").exec(info);
  return match ? Number(match[1]) : 0;
}

interface Deployment {
  name: string;
  /** Every redis-server holding data: the one, or the cluster's masters. */
  nodes: RedisServer[];
  /** A plain connection to each node, for its own INFO. */
  probes: Redis[];
  cluster: boolean;
  /** Two server instances, the first used alone in the one-instance configurations. */
  servers: Served[];
  swarmsOn: number[];
  patched: number;
  released: number;
}

/** How long each server instance is loaded alone before the rounds, in s. */
const WARM_UP_S = 3;

/** The key prefix of both deployments' servers. */
const PREFIX = "cluster-bench";

/** The value the next patch writes: never written before, in any run (a patch that changes nothing writes nothing). */
let patchValue = 0;

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
const median = (xs: readonly number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

const PATCH = 'mutation($id: ID!, $v: JSON) { patchContext(id: $id, patch: [{op: replace, path: "/execution/counter", value: $v}]) { version } }';
const ALLOCATE =
  'mutation($id: ID!) { allocate(contextId: $id, request: [{kind: "credits", amount: 10}, {kind: "tokens", amount: 100}], mode: EXACT, leaseMs: 60000, holder: "bench") { id } }';
const RELEASE = 'mutation($a: ID!) { release(allocationId: $a, usage: [{kind: "credits", amount: 1}]) { status } }';

/**
 * Runs the cluster benchmark: starts one redis-server and a 3-master cluster (both persisting
 * nothing, startRedisServer's options), two `serve` instances on each, and `swarms` swarms per
 * deployment; warms each instance up alone, then, per round, measures one and two instances on
 * each deployment, `connections` in each configuration. Stops everything it started. Throws if a
 * server or Redis fails to start, or if `connections` is odd.
 */
export async function clusterBench(serve: ServeApp, options: ClusterBenchOptions): Promise<ClusterReport> {
  if (options.connections % 2 !== 0) throw new Error(`the cluster part splits its ${options.connections} connections over two instances: give an even number`);
  const machine = { loadAverage: loadavg()[0]!, cores: cpus().length };
  const single = await startRedisServer();
  const cluster = await startRedisCluster(3);
  const deployments: Deployment[] = [];
  try {
    const swarmIds = Array.from({ length: options.swarms }, (_, i) => `swarm-${i}`);
    for (const [name, nodes, env] of [
      ["one redis-server", [single], { BENCH_REDIS_URL: single.url, BENCH_KEY_PREFIX: PREFIX }],
      ["3-master cluster", cluster.nodes, { BENCH_REDIS_CLUSTER_NODES: cluster.seeds, BENCH_KEY_PREFIX: PREFIX }],
    ] as const) {
      const servers = [await serve(env), await serve(env)];
      const deployment: Deployment = {
        name,
        nodes: [...nodes],
        probes: nodes.map((n) => new Redis(n.url)),
        cluster: nodes.length > 1,
        servers,
        swarmsOn: [],
        patched: 0,
        released: 0,
      };
      deployments.push(deployment);
      const document = {
        resources: { limits: { credits: 1e12, tokens: 1e12 } },
        policy: { allocation: { maxShare: 0.5 } },
        execution: { counter: 0 },
        blackboard: { note: "observation ".repeat(70) },
      };
      for (const id of swarmIds) {
        const created = await post(servers[0]!.url, "mutation($id: ID!, $d: JSON!) { createContext(id: $id, document: $d) { version } }", { id, d: document });
        if (created.errors) throw new Error(`createContext ${id} on ${name}: ${JSON.stringify(created.errors)}`);
      }
      deployment.swarmsOn = await swarmsPerNode(deployment, swarmIds);
    }
    // Each instance warms up alone first: the second would otherwise serve its first requests
    // (unoptimized code, cold caches) only in the measured runs of two instances.
    for (const d of deployments) for (const s of d.servers) await drive(d, [s.url], swarmIds, options.connections, WARM_UP_S);
    const rows: ClusterRow[] = [];
    for (const instances of [1, 2]) for (const d of deployments) rows.push({ deployment: d.name, instances, samples: [] });
    // Every configuration once per round, back to back: the machine's speed drifts from minute to minute.
    for (let round = 0; round < options.rounds; round++) {
      for (const row of rows) {
        const deployment = deployments.find((d) => d.name === row.deployment)!;
        row.samples.push(await measure(deployment, row.instances, swarmIds, options));
      }
    }
    for (const row of rows) {
      const base = rows.find((r) => r.instances === row.instances && r.deployment === deployments[0]!.name)!;
      if (row !== base) row.ratios = row.samples.map((s, i) => s.rps / base.samples[i]!.rps);
    }
    const checks = [];
    for (const d of deployments) checks.push(await check(d, swarmIds, options));
    for (const d of deployments) for (const s of d.servers) s.stop();
    const publishCost = [];
    for (const d of deployments) publishCost.push({ deployment: d.name, microsPerPublish: await costOfPublish(d, options.publishes) });
    return { options, machine, rows, checks, publishCost };
  } finally {
    for (const d of deployments) {
      for (const s of d.servers) s.stop();
      for (const p of d.probes) p.disconnect();
    }
    await single.stop();
    await cluster.stop();
  }
}

async function post(url: string, query: string, variables?: unknown): Promise<any> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
  return res.json();
}

/** How many of `swarmIds` live on each of the deployment's nodes, from the slot of their hash tag. */
async function swarmsPerNode(d: Deployment, swarmIds: readonly string[]): Promise<number[]> {
  if (!d.cluster) return [swarmIds.length];
  const counts = d.nodes.map(() => 0);
  const ranges = (await d.probes[0]!.call("cluster", "slots")) as [number, number, [string, number]][];
  const keys = new Keys(PREFIX);
  for (const id of swarmIds) {
    const slot = (await d.probes[0]!.call("cluster", "keyslot", keys.contextBase(id))) as number;
    const port = ranges.find(([from, to]) => slot >= from && slot <= to)![2][1];
    counts[d.nodes.findIndex((n) => n.port === port)]!++;
  }
  return counts;
}

/**
 * `connections` connections (split evenly over `urls`) each loop patchContext, allocate, release
 * on the next swarm in turn, for `durationS`; resolves with each response's latency in ms and the
 * responses each URL served, and counts the deployment's acknowledged patches and releases.
 */
async function drive(d: Deployment, urls: string[], swarmIds: readonly string[], connections: number, durationS: number) {
  let turn = 0;
  const latencies: number[] = [];
  const served = urls.map(() => 0);
  let failures = 0;
  const acknowledge = (body: string, field: string) => {
    const parsed = JSON.parse(body);
    if (parsed.errors || !parsed.data?.[field]) failures++;
    return parsed.data?.[field];
  };
  const requests: autocannon.Request[] = [
    {
      method: "POST",
      setupRequest: (req, state: any) => {
        // Each chain takes the next swarm, so every swarm gets the same share of the load.
        state.swarm = swarmIds[turn++ % swarmIds.length];
        return { ...req, body: JSON.stringify({ query: PATCH, variables: { id: state.swarm, v: ++patchValue } }) };
      },
      onResponse: (_status, body) => {
        if (acknowledge(body, "patchContext")) d.patched++;
      },
    },
    {
      method: "POST",
      setupRequest: (req, state: any) => ({ ...req, body: JSON.stringify({ query: ALLOCATE, variables: { id: state.swarm } }) }),
      onResponse: (_status, body, state: any) => (state.allocationId = acknowledge(body, "allocate")?.id),
    },
    {
      method: "POST",
      setupRequest: (req, state: any) => ({ ...req, body: JSON.stringify({ query: RELEASE, variables: { a: state.allocationId } }) }),
      onResponse: (_status, body) => {
        if (acknowledge(body, "release")) d.released++;
      },
    },
  ];
  const results = await Promise.all(
    urls.map((url, i) =>
      autocannon({
        url,
        method: "POST",
        headers: { "content-type": "application/json" },
        requests,
        connections: connections / urls.length,
        duration: durationS,
        setupClient: (client) =>
          client.on("response", (_status, _bytes, ms) => {
            latencies.push(ms);
            served[i]!++;
          }),
      }),
    ),
  );
  return { latencies, served, failures: failures + results.reduce((sum, r) => sum + r.non2xx + r.errors, 0) };
}

/** One measured run of `instances` of the deployment's servers, after a 1 s warm-up. */
async function measure(d: Deployment, instances: number, swarmIds: readonly string[], options: ClusterBenchOptions): Promise<ClusterSample> {
  const servers = d.servers.slice(0, instances);
  const urls = servers.map((s) => s.url);
  await drive(d, urls, swarmIds, options.connections, 1);
  const stats = () => Promise.all(d.probes.map(async (p) => ({ info: await p.info("stats"), bus: d.cluster ? ((await p.call("cluster", "info")) as string) : "" })));
  const nodeCpu = () => d.nodes.map((n) => cpuSeconds(n.process.pid!));
  const serverCpu = () => servers.map((s) => cpuSeconds(s.pid));
  const [statsBefore, nodesBefore, serversBefore, selfBefore] = [await stats(), nodeCpu(), serverCpu(), cpuSeconds(process.pid)];
  const { latencies, served, failures } = await drive(d, urls, swarmIds, options.connections, options.durationS);
  const [statsAfter, nodesAfter, serversAfter, selfAfter] = [await stats(), nodeCpu(), serverCpu(), cpuSeconds(process.pid)];
  const requests = latencies.length;
  const figure = (name: string, cpuS: number, of = requests): CpuFigure => ({ name, cpuS, requests: of, per1000: cpuS / (of / 1000) });
  latencies.sort((x, y) => x - y);
  return {
    requests,
    rps: requests / options.durationS,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    failures,
    nodes: d.nodes.map((n, i) => ({
      ...figure(d.cluster ? `master ${i + 1} (:${n.port})` : `redis-server (:${n.port})`, nodesAfter[i]! - nodesBefore[i]!),
      swarms: d.swarmsOn[i]!,
      commandsPerRequest: (infoField(statsAfter[i]!.info, "total_commands_processed") - infoField(statsBefore[i]!.info, "total_commands_processed")) / requests,
      readsPerRequest: (infoField(statsAfter[i]!.info, "total_reads_processed") - infoField(statsBefore[i]!.info, "total_reads_processed")) / requests,
      busPublishesPerRequest:
        (infoField(statsAfter[i]!.bus, "cluster_stats_messages_publish_received") - infoField(statsBefore[i]!.bus, "cluster_stats_messages_publish_received")) / requests,
    })),
    servers: servers.map((_, i) => figure(`server instance ${i + 1}`, serversAfter[i]! - serversBefore[i]!, served[i])),
    loadGenerator: figure("load generator (this process)", selfAfter - selfBefore),
  };
}

/**
 * Every acknowledged patch must be in its swarm's version and every acknowledged release's credit
 * in its budget, read through the API; requests cut off in flight by autocannon's deadline (at
 * most one per connection and run) may have applied too.
 */
async function check(d: Deployment, swarmIds: readonly string[], options: ClusterBenchOptions): Promise<string> {
  let versions = 0;
  let consumed = 0;
  for (const id of swarmIds) {
    const { data } = await post(d.servers[0]!.url, 'query($id: ID!) { context(id: $id) { version budget { consumed { kind amount } } } }', { id });
    versions += data.context.version - 1;
    consumed += data.context.budget.consumed.find((a: { kind: string }) => a.kind === "credits")?.amount ?? 0;
  }
  // One load run per instance before the rounds, and per round and instance count a warm-up and a measured run.
  const slack = (2 + 2 * 2 * options.rounds) * options.connections;
  const sound = (acked: number, applied: number) => applied >= acked && applied - acked <= slack;
  const verdict = sound(d.patched, versions) && sound(d.released, consumed) ? "no lost update" : "LOST OR EXTRA WRITES";
  return `${d.name}: ${d.patched} acknowledged patches, versions sum to ${versions}; ${d.released} acknowledged releases, ${consumed} credits consumed: ${verdict}`;
}

/**
 * CPU µs per PUBLISH on each node while `count` PUBLISHes of a wake-up-sized message, pipelined
 * 500 at a time, go to the first node on a channel no one listens to (the servers are stopped):
 * on a cluster, each is also sent to every other node over the cluster bus.
 */
async function costOfPublish(d: Deployment, count: number): Promise<number[]> {
  // A probe channel of the bench's own, not a product channel: nothing should act on these.
  const channel = "bench-publish-probe";
  const received = () =>
    Promise.all(d.probes.map(async (p) => (d.cluster ? infoField((await p.call("cluster", "info")) as string, "cluster_stats_messages_publish_received") : 0)));
  const receivedBefore = await received();
  const before = d.nodes.map((n) => cpuSeconds(n.process.pid!));
  for (let sent = 0; sent < count; sent += 500) {
    const batch = d.probes[0]!.pipeline();
    for (let i = sent; i < Math.min(count, sent + 500); i++) batch.publish(channel, `swarm-${i % 64} ${i}`);
    await batch.exec();
  }
  // The other nodes may still be handling bus messages after the last PUBLISH's reply: wait until
  // each has counted them all (gossip adds none of these).
  for (let polls = 0; d.cluster; polls++) {
    const now = await received();
    if (now.slice(1).every((n, i) => n - receivedBefore[i + 1]! >= count)) break;
    if (polls === 500) throw new Error(`the cluster's nodes did not receive ${count} PUBLISHes within 5 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return d.nodes.map((n, i) => ((cpuSeconds(n.process.pid!) - before[i]!) / count) * 1e6);
}

/** Prints the report's tables and writes it to .bench/cluster.json. */
export function printCluster(report: ClusterReport): void {
  const { options } = report;
  console.log(
    `\ncluster: ${options.swarms} swarms per deployment, each with a budget; each connection loops patchContext (1 KiB document), allocate (EXACT, 2 kinds), release on the next swarm in turn;`,
  );
  console.log(
    `${options.connections} connections in every configuration (split evenly over its instances), ${options.durationS} s after a 1 s warm-up, medians of ${options.rounds} rounds; every redis-server persists nothing (--save "" --appendonly no), the cluster's with cluster-enabled added`,
  );
  console.log(
    `CPU from /proc/<pid>/stat (utime + stime) over the measured run; s per 1,000 requests = ms per request; cores busy = all of them together; the machine had ${report.machine.cores} cores and a 1-minute load average of ${report.machine.loadAverage.toFixed(1)} before this part began\n`,
  );
  console.log("| deployment | server instances | req/s | p50 ms | p99 ms | failures | req/s / one redis-server (median; per round) | Redis CPU s per 1,000 req | server CPU s per 1,000 req | load generator CPU s per 1,000 req | cores busy |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const row of report.rows) {
    const s = row.samples;
    const perRequest = (xs: CpuFigure[], x: ClusterSample) => xs.reduce((total, f) => total + f.cpuS, 0) / (x.requests / 1000);
    const busy = s.map((x) => (x.nodes.reduce((t, n) => t + n.cpuS, 0) + x.servers.reduce((t, n) => t + n.cpuS, 0) + x.loadGenerator.cpuS) / options.durationS);
    const ratio = row.ratios ? `${median(row.ratios).toFixed(2)} (${row.ratios.map((r) => r.toFixed(2)).join(", ")})` : "";
    console.log(
      `| ${row.deployment} | ${row.instances} | ${median(s.map((x) => x.rps)).toFixed(0)} | ${median(s.map((x) => x.p50)).toFixed(1)} | ${median(s.map((x) => x.p99)).toFixed(1)} | ${s.reduce((t, x) => t + x.failures, 0)} | ${ratio} | ${median(s.map((x) => perRequest(x.nodes, x))).toFixed(3)} | ${median(s.map((x) => perRequest(x.servers, x))).toFixed(3)} | ${median(s.map((x) => x.loadGenerator.per1000)).toFixed(3)} | ${median(busy).toFixed(2)} |`,
    );
  }
  console.log(
    "\nper process (medians of rounds): CPU per 1,000 requests of the run, a server instance's per 1,000 it served; share = of the deployment's Redis CPU, a server instance's of the requests; evenness = busiest master's CPU / the masters' mean\n",
  );
  console.log("| deployment | server instances | process | swarms | CPU s per 1,000 req | share | commands per req (scripts' included) | client socket reads per req | bus PUBLISHes received per req |");
  console.log("|---|---:|---|---:|---:|---:|---:|---:|---:|");
  for (const row of report.rows) {
    const nodes = row.samples[0]!.nodes.map((n, i) => ({
      ...n,
      per1000: median(row.samples.map((s) => s.nodes[i]!.per1000)),
      commandsPerRequest: median(row.samples.map((s) => s.nodes[i]!.commandsPerRequest)),
      readsPerRequest: median(row.samples.map((s) => s.nodes[i]!.readsPerRequest)),
      busPublishesPerRequest: median(row.samples.map((s) => s.nodes[i]!.busPublishesPerRequest)),
    }));
    const total = nodes.reduce((t, n) => t + n.per1000, 0);
    for (const n of nodes) {
      console.log(
        `| ${row.deployment} | ${row.instances} | ${n.name} | ${n.swarms} | ${n.per1000.toFixed(3)} | ${((n.per1000 / total) * 100).toFixed(0)} % | ${n.commandsPerRequest.toFixed(2)} | ${n.readsPerRequest.toFixed(2)} | ${n.busPublishesPerRequest.toFixed(2)} |`,
      );
    }
    row.samples[0]!.servers.forEach((server, i) => {
      const share = median(row.samples.map((s) => s.servers[i]!.requests / s.requests));
      console.log(`| ${row.deployment} | ${row.instances} | ${server.name} | | ${median(row.samples.map((s) => s.servers[i]!.per1000)).toFixed(3)} | ${(share * 100).toFixed(0)} % | | | |`);
    });
    if (nodes.length > 1) {
      const evenness = median(row.samples.map((s) => Math.max(...s.nodes.map((n) => n.cpuS)) / (s.nodes.reduce((t, n) => t + n.cpuS, 0) / s.nodes.length)));
      console.log(`| ${row.deployment} | ${row.instances} | evenness | | ${evenness.toFixed(2)} | | | | |`);
    }
  }
  console.log(`\nCPU µs per PUBLISH, ${options.publishes} wake-up-sized messages pipelined to the first node, no subscribers:\n`);
  console.log("| deployment | node sent to | each other node |");
  console.log("|---|---:|---|");
  for (const p of report.publishCost) {
    console.log(`| ${p.deployment} | ${p.microsPerPublish[0]!.toFixed(2)} | ${p.microsPerPublish.slice(1).map((x) => x.toFixed(2)).join(", ")} |`);
  }
  console.log("");
  for (const line of report.checks) console.log(line);
  mkdirSync(".bench", { recursive: true });
  writeFileSync(".bench/cluster.json", JSON.stringify({ at: new Date().toISOString(), ...report }, null, 2));
}
