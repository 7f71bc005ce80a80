// `npm run bench`: requests/s of swarm-context's context reads and writes and of ledger allocate+release pairs, as ratios to a plain yoga server measured in the same run; then the console overview among few and many contexts; then the WebSocket fan-out of its change feed against a naive yoga + graphql-ws + RedisPubSub feed; then a ledger page on a short and a long history of ended allocations; then the longest Redis command of deleteContext on a swarm of 100,000 allocations; then the admin console's page weight and time to list 1,000 swarms in Chromium; then 64 swarms under patches and allocate+release on one redis-server against a 3-master Redis Cluster, with each node's CPU (BENCH_ONLY=requests, fanout, overview, ledger-page, deletion, console or cluster runs just that one). Not part of the full run: BENCH_ONLY=state-check measures the state guard's checks, BENCH_ONLY=contexts-page times one contexts page, each on one Redis and on a 3-master Redis Cluster; BENCH_ONLY=wakeups compares classic and sharded pub/sub for wake-ups and BENCH_ONLY=wait-replicas the write cost of SWARM_REDIS_WAIT_REPLICAS=1, each on Redis Clusters of its own.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import autocannon from "autocannon";
import { Redis } from "ioredis";
import { clusterBench, printCluster, type ClusterBenchOptions, type ClusterReport } from "./cluster.js";
import { deletionBench, printDeletion, type DeletionResult } from "./deletion.js";
import { fanout, idleSubscriptionMemory, type FanoutResult, type MemoryResult } from "./fanout.js";
import { seedContexts } from "./overview.js";
import { printStateCheck, stateCheckBench } from "./state-check.js";
import { consoleLoad, type ConsoleLoadResult } from "./console-load.js";
import { contextsPage, printContextsPage } from "./contexts-page.js";
import { ledgerPageScenario, LEDGER_PAGE_QUERY, type LedgerPageRow } from "./ledger-page.js";
import { printWakeups, wakeupsBench } from "./cluster-wakeups.js";
import { printWaitReplicas, waitReplicasBench } from "./wait-replicas.js";
import { cpuSeconds } from "./proc.js";
import { ledgerViolations } from "../support/ledger-invariant.js";
import { startRedisServer, type RedisServer } from "../support/redis-server.js";

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
/** The value the next patch of the patch scenarios writes: each one changes the document. */
let patchValue = 0;
/** Contexts in each overview deployment; the first is the baseline of the ratios. */
const OVERVIEW_CONTEXTS = (process.env.BENCH_OVERVIEW_CONTEXTS ?? "100,100000").split(",").map(Number);
const OVERVIEW_QUERY = "{ contexts(first: 50) { totalCount edges { node { id updatedAt activeAllocations } } } }";
/** Ended allocations in the two swarms of the ledger page benchmark: a short and a long history. */
const LEDGER_PAGE_HISTORIES = (process.env.BENCH_LEDGER_PAGE_HISTORIES ?? "100,100000").split(",").map(Number);
const LEDGER_PAGE_REQUESTS = Number(process.env.BENCH_LEDGER_PAGE_REQUESTS ?? 200);
const DELETION_ALLOCATIONS = Number(process.env.BENCH_DELETION_ALLOCATIONS ?? 100_000);
const FANOUT_UPDATES = Number(process.env.BENCH_FANOUT_UPDATES ?? 200);
const FANOUT_SUBSCRIBERS = (process.env.BENCH_FANOUT_SUBSCRIBERS ?? "1,100,1000").split(",").map(Number);
const IDLE_SUBSCRIPTIONS = Number(process.env.BENCH_IDLE_SUBSCRIPTIONS ?? 5000);
/** The multiplexed fan-out: this many subscriptions over BENCH_FANOUT_MUX_CONNECTIONS WebSocket connections. */
const FANOUT_MUX_SUBSCRIBERS = Number(process.env.BENCH_FANOUT_MUX_SUBSCRIBERS ?? 1000);
const FANOUT_MUX_CONNECTIONS = Number(process.env.BENCH_FANOUT_MUX_CONNECTIONS ?? 10);
const CONSOLE_LOADS = Number(process.env.BENCH_CONSOLE_LOADS ?? 5);
const CLUSTER: ClusterBenchOptions = {
  swarms: Number(process.env.BENCH_CLUSTER_SWARMS ?? 64),
  connections: CONNECTIONS,
  durationS: DURATION_S,
  rounds: ROUNDS,
  publishes: Number(process.env.BENCH_CLUSTER_PUBLISHES ?? 100_000),
};
/** Hash slots the state guard watches in each periodic-check measurement (BENCH_ONLY=state-check). */
const STATE_CHECK_SLOTS = (process.env.BENCH_STATE_CHECK_SLOTS ?? "0,64,1024,16384").split(",").map(Number);
const WAKEUP_MESSAGES = Number(process.env.BENCH_WAKEUP_MESSAGES ?? 50_000);
const WAKEUP_SUBSCRIBERS = (process.env.BENCH_WAKEUP_SUBSCRIBERS ?? "1,4").split(",").map(Number);
const children: ChildProcess[] = [];

interface Served {
  url: string;
  pid: number;
  /** Kills this server alone, before stopAll would. */
  stop(): void;
}

/** Spawns `script ...args` and resolves with the URL it prints and its process id. */
function serveScript(script: string, args: string[], env: Record<string, string> = {}): Promise<Served> {
  const label = args[0] ?? script;
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  const stop = () => {
    const at = children.indexOf(child);
    if (at >= 0) children.splice(at, 1);
    child.kill("SIGKILL");
  };
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      if (line.startsWith("http")) resolve({ url: line, pid: child.pid!, stop });
    });
    child.once("exit", (code) => reject(new Error(`${label} server exited with ${code}`)));
  });
}

function stopAll(): void {
  for (const child of children.splice(0)) child.kill("SIGKILL");
}

async function post(url: string, query: string, variables?: unknown): Promise<any> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
  return res.json();
}

interface Row {
  scenario: string;
  rps: number;
  p50: number;
  p99: number;
  failures: number;
  /** Ratio to the ceiling without yoga's request body bound (which swarm-context replaces by its own). */
  unboundedRatio?: number;
  /** CPU time of the server processes (`cpuOf`: node, and redis-server for swarm-context) per request, in ms. */
  cpuMs?: number;
  ratio?: number;
  ratios?: number[];
  goal?: number;
}

/** One GraphQL request of a chain that each connection sends in a loop, in order. */
interface Step {
  query: string;
  variables?: unknown;
  /** Variables computed from what earlier steps of the chain stored in `state`. */
  variablesFrom?: (state: Record<string, unknown>) => unknown;
  /** Keeps what later steps need from this step's response body. */
  keep?: (body: any, state: Record<string, unknown>) => void;
}

function toRequest(step: Step): autocannon.Request {
  const request: autocannon.Request = { method: "POST", body: JSON.stringify({ query: step.query, variables: step.variables }) };
  // autocannon calls these whenever the keys are present, so they are set only when needed.
  const { variablesFrom, keep } = step;
  if (variablesFrom) {
    request.setupRequest = (req, state) => ({ ...req, body: JSON.stringify({ query: step.query, variables: variablesFrom(state as Record<string, unknown>) }) });
  }
  if (keep) request.onResponse = (_status, body, state) => keep(JSON.parse(body), state as Record<string, unknown>);
  return request;
}

/**
 * Load with autocannon, each connection sending `steps` in a loop; rps counts requests, not
 * chains. A response counts as a failure if it is not 2xx or carries GraphQL errors.
 */
async function load(scenario: string, url: string, steps: Step[], cpuOf: readonly number[] = []): Promise<Row & { acknowledged: number }> {
  let graphqlErrors = 0;
  let acknowledged = 0;
  const opts = {
    url,
    method: "POST" as const,
    headers: { "content-type": "application/json" },
    requests: steps.map(toRequest),
    connections: CONNECTIONS,
    setupClient: (client: autocannon.Client) =>
      client.on("body", (buf: Buffer) => (buf.includes('"errors"') ? graphqlErrors++ : acknowledged++)),
  };
  await autocannon({ ...opts, duration: 1 }); // warm-up
  graphqlErrors = 0;
  const cpuBefore = cpuOf.map(cpuSeconds);
  const result = await autocannon({ ...opts, duration: DURATION_S });
  const cpu = cpuOf.reduce((sum, pid, i) => sum + cpuSeconds(pid) - cpuBefore[i]!, 0);
  return {
    scenario,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    failures: result.non2xx + result.errors + graphqlErrors,
    cpuMs: cpuOf.length > 0 ? (cpu * 1000) / result.requests.total : undefined,
    acknowledged,
  };
}

/** A patch of `/execution/counter` in context bench-<bytes>, with a new value every time: a patch that leaves the document as it is writes nothing. */
function patchStep(bytes: number): Step {
  return {
    query: 'mutation($id: ID!, $v: JSON) { patchContext(id: $id, patch: [{op: replace, path: "/execution/counter", value: $v}]) { version } }',
    variablesFrom: () => ({ id: `bench-${bytes}`, v: ++patchValue }),
  };
}

/** A nested, realistic document of about `bytes` serialized bytes. */
function documentOf(bytes: number) {
  const notes: { agent: string; step: number; text: string }[] = [];
  const doc = {
    resources: { limits: { credits: 100_000, tokens: 2_000_000 } },
    policy: { mode: "explore", allocation: { maxShare: 0.5 } },
    configuration: { model: "m-large", temperature: 0.2 },
    execution: { counter: 0, phase: "run" },
    blackboard: { notes },
  };
  while (JSON.stringify(doc).length < bytes) {
    notes.push({ agent: `agent-${notes.length % 16}`, step: notes.length, text: "observation ".repeat(6) });
  }
  return doc;
}

const median = (xs: readonly number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

interface FanoutRow {
  subscribers: number;
  ours: FanoutResult | string;
  baseline: FanoutResult | string;
  /** The same client against a server that only writes a pre-serialized message to each socket. */
  ceiling: FanoutResult | string;
  /** Deliveries/s ours / baseline, per round. */
  ratios: number[];
}

/** Per figure, the median over rounds (lost: the sum); the first failure if any round failed. */
function medianOf(results: (FanoutResult | string)[]): FanoutResult | string {
  const failed = results.find((r): r is string => typeof r === "string");
  if (failed !== undefined) return failed;
  const ok = results as FanoutResult[];
  return {
    ...ok[0]!,
    deliveries: ok.reduce((sum, r) => sum + r.deliveries, 0),
    lost: ok.reduce((sum, r) => sum + r.lost, 0),
    p50: median(ok.map((r) => r.p50)),
    p99: median(ok.map((r) => r.p99)),
    deliveriesPerSecond: median(ok.map((r) => r.deliveriesPerSecond)),
  };
}

interface FanoutReport {
  rows: FanoutRow[];
  /** FANOUT_MUX_SUBSCRIBERS over FANOUT_MUX_CONNECTIONS connections, with each server's CPU. */
  multiplexed: FanoutRow;
  memory: { server: string; result: MemoryResult | string }[];
}

/** The failure's message instead of a figure, so one broken server does not hide the other's. */
const orMessage = <T>(run: Promise<T>): Promise<T | string> => run.catch((err: Error) => err.message);

/** Per server, each round's result of one scenario. */
interface FanoutRuns {
  ours: (FanoutResult | string)[];
  baseline: (FanoutResult | string)[];
  ceiling: (FanoutResult | string)[];
}

function fanoutRow(subscribers: number, run: FanoutRuns): FanoutRow {
  return {
    subscribers,
    ours: medianOf(run.ours),
    baseline: medianOf(run.baseline),
    ceiling: medianOf(run.ceiling),
    ratios: run.ours.map((ours, i) => {
      const baseline = run.baseline[i]!;
      return typeof ours === "string" || typeof baseline === "string" ? NaN : ours.deliveriesPerSecond / baseline.deliveriesPerSecond;
    }),
  };
}

/**
 * Fan-out of swarm-context (a server spawned here on `redis`) and of the naive feed and the
 * ceiling (started here, the naive feed on the same Redis), alternating per subscriber count so
 * all see the machine in the same state; then FANOUT_MUX_SUBSCRIBERS subscriptions over
 * FANOUT_MUX_CONNECTIONS connections, with the CPU time of each server (and its redis-server).
 */
async function fanoutScenarios(redis: RedisServer): Promise<FanoutReport> {
  const redisUrl = redis.url;
  const app = await serveScript("bench/serve.ts", ["app"], { BENCH_REDIS_URL: redisUrl });
  const naive = await serveScript("bench/naive-feed-server.ts", [], { BENCH_REDIS_URL: redisUrl });
  const broadcast = await serveScript("bench/broadcast-ceiling-server.ts", []);
  const redisPid = redis.process.pid!;
  const runs = new Map<number, FanoutRuns>();
  const mux: FanoutRuns = { ours: [], baseline: [], ceiling: [] };
  const perConnection = Math.ceil(FANOUT_MUX_SUBSCRIBERS / FANOUT_MUX_CONNECTIONS);
  // Rounds, each measuring the three servers back to back per subscriber count: the machine's
  // speed drifts, so medians over rounds are reported, with each round's ratio.
  for (let round = 0; round < ROUNDS; round++) {
    for (const subscribers of FANOUT_SUBSCRIBERS) {
      const run = runs.get(subscribers) ?? { ours: [], baseline: [], ceiling: [] };
      runs.set(subscribers, run);
      run.ceiling.push(await orMessage(fanout(broadcast.url, subscribers, FANOUT_UPDATES)));
      run.baseline.push(await orMessage(fanout(naive.url, subscribers, FANOUT_UPDATES)));
      run.ours.push(await orMessage(fanout(app.url, subscribers, FANOUT_UPDATES)));
    }
    mux.ceiling.push(await orMessage(fanout(broadcast.url, FANOUT_MUX_SUBSCRIBERS, FANOUT_UPDATES, perConnection, [broadcast.pid])));
    mux.baseline.push(await orMessage(fanout(naive.url, FANOUT_MUX_SUBSCRIBERS, FANOUT_UPDATES, perConnection, [naive.pid, redisPid])));
    mux.ours.push(await orMessage(fanout(app.url, FANOUT_MUX_SUBSCRIBERS, FANOUT_UPDATES, perConnection, [app.pid, redisPid])));
  }
  const rows: FanoutRow[] = [...runs].map(([subscribers, run]) => fanoutRow(subscribers, run));
  const multiplexed = fanoutRow(FANOUT_MUX_SUBSCRIBERS, mux);
  app.stop();
  naive.stop();
  broadcast.stop();
  // Idle memory is read from fresh servers: one that already served load has heap it freed and
  // kept, which new subscriptions fill without growing RSS (about half the figure, when tried).
  const memory: FanoutReport["memory"] = [];
  for (const [server, script, args] of [["swarm-context", "bench/serve.ts", ["app"]], ["baseline", "bench/naive-feed-server.ts", []]] as const) {
    const fresh = await serveScript(script, [...args], { BENCH_REDIS_URL: redisUrl });
    memory.push({ server, result: await orMessage(idleSubscriptionMemory(fresh.url, fresh.pid, IDLE_SUBSCRIPTIONS)) });
    fresh.stop();
  }
  return { rows, multiplexed, memory };
}

function printFanout(report: FanoutReport): void {
  const cells = (r: FanoutResult | string) =>
    typeof r === "string" ? [`failed: ${r}`, "", "", ""] : [r.p50.toFixed(1), r.p99.toFixed(1), r.deliveriesPerSecond.toFixed(0), String(r.lost)];
  console.log(`\nfan-out: one swarm, ${FANOUT_UPDATES} updates one at a time, each awaited at every subscriber (lost after 2 s); medians of ${ROUNDS} rounds;`);
  console.log("latency from sending the mutation to a subscriber receiving its change; same machine, same Redis, baseline = yoga + graphql-ws + RedisPubSub + withFilter\n");
  console.log("ceiling = the same client against a server that only writes one pre-serialized message per update to each socket (no GraphQL, no Redis)\n");
  console.log("| subscribers | ours p50 ms | ours p99 ms | ours deliveries/s | ours lost | baseline p50 ms | baseline p99 ms | baseline deliveries/s | baseline lost | ceiling p50 ms | ceiling p99 ms | ceiling deliveries/s | ceiling lost | ours / baseline (median; per round) | ours / ceiling | goal |");
  console.log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
  const rate = (r: FanoutResult | string) => (typeof r === "string" ? undefined : r.deliveriesPerSecond);
  const ratioOf = (a: FanoutResult | string, b: FanoutResult | string) => {
    const x = rate(a);
    const y = rate(b);
    return x === undefined || y === undefined ? undefined : x / y;
  };
  const show = (x: number | undefined) => (x === undefined ? "" : `${x.toFixed(2)}x`);
  const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");
  for (const { subscribers, ours, baseline, ceiling, ratios } of report.rows) {
    const ratio = median(ratios);
    const ofCeiling = ratioOf(ours, ceiling);
    let goal = "";
    if (subscribers === 1 && typeof ours !== "string" && typeof baseline !== "string") {
      goal = `p50 <= baseline's ${verdict(ours.p50 <= baseline.p50)} (${(baseline.p50 / ours.p50).toFixed(2)}x)`;
    }
    if (subscribers === 1000) goal = `ours / ceiling >= 0.9x ${verdict(ofCeiling !== undefined && ofCeiling >= 0.9)}`;
    const perRound = ratios.map((r) => r.toFixed(2)).join(", ");
    console.log(`| ${subscribers} | ${[...cells(ours), ...cells(baseline), ...cells(ceiling)].join(" | ")} | ${show(ratio)} (${perRound}) | ${show(ofCeiling)} | ${goal} |`);
  }
  const { multiplexed: mux } = report;
  console.log(`\nmultiplexed: ${mux.subscribers} subscriptions over ${FANOUT_MUX_CONNECTIONS} WebSocket connections, the same updates; server CPU = utime + stime from /proc of the server's node process and (swarm-context, baseline) the redis-server, per 1,000 deliveries\n`);
  console.log("| server | p50 ms | p99 ms | deliveries/s | lost | server CPU ms per 1,000 deliveries | / ceiling deliveries/s | goal |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---|");
  for (const [server, r] of [["swarm-context", mux.ours], ["baseline", mux.baseline], ["ceiling", mux.ceiling]] as const) {
    const cpu = typeof r === "string" ? undefined : r.cpuMsPer1000;
    const goal = server === "swarm-context" ? `CPU <= 12 ms ${verdict(cpu !== undefined && cpu <= 12)}` : "";
    console.log(`| ${server} | ${cells(r).join(" | ")} | ${cpu === undefined ? "" : cpu.toFixed(1)} | ${show(ratioOf(r, mux.ceiling))} | ${goal} |`);
  }
  console.log(`\nidle subscriptions: ${IDLE_SUBSCRIPTIONS}, one WebSocket connection each, 50 per swarm, on a freshly started server; RSS from /proc\n`);
  console.log("| server | RSS before MB | RSS after MB | live afterwards | KB per subscription | goal |");
  console.log("|---|---:|---:|---:|---:|---|");
  for (const { server, result: m } of report.memory) {
    if (typeof m === "string") {
      console.log(`| ${server} | failed: ${m} | | | | |`);
      continue;
    }
    const goal = server === "swarm-context" ? `<= 10 KB ${m.kbPerSubscription <= 10 ? "PASS" : "MISS"}` : "";
    console.log(`| ${server} | ${(m.rssBeforeKb / 1024).toFixed(0)} | ${(m.rssAfterKb / 1024).toFixed(0)} | ${m.live} / ${m.subscriptions} | ${m.kbPerSubscription.toFixed(1)} | ${goal} |`);
  }
  mkdirSync(".bench", { recursive: true });
  writeFileSync(".bench/fanout.json", JSON.stringify({ at: new Date().toISOString(), updates: FANOUT_UPDATES, ...report }, null, 2));
}

interface OverviewRow {
  contexts: number;
  seedSeconds: number;
  runs: Row[];
}

/**
 * The overview query on deployments of OVERVIEW_CONTEXTS contexts (one server and key prefix
 * each, seeded through the store), measured back to back in each round.
 */
async function overviewScenario(redisUrl: string): Promise<OverviewRow[]> {
  const rows: (OverviewRow & { url: string })[] = [];
  for (const contexts of OVERVIEW_CONTEXTS) {
    const prefix = `overview${contexts}`;
    // The server first: it writes the deployment's epoch into the empty keyspace.
    const { url } = await serveScript("bench/serve.ts", ["app"], { BENCH_REDIS_URL: redisUrl, BENCH_KEY_PREFIX: prefix });
    rows.push({ contexts, url, seedSeconds: await seedContexts(redisUrl, prefix, contexts), runs: [] });
  }
  for (const row of rows) {
    const check = await post(row.url, OVERVIEW_QUERY);
    if (check.errors || check.data.contexts.totalCount !== row.contexts) throw new Error(`overview among ${row.contexts}: ${JSON.stringify(check).slice(0, 300)}`);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const row of rows) row.runs.push(await load(`overview among ${row.contexts}`, row.url, [{ query: OVERVIEW_QUERY }]));
  }
  return rows.map(({ url: _url, ...row }) => row);
}

function printOverview(rows: OverviewRow[]): void {
  console.log(`\noverview: ${OVERVIEW_QUERY}`);
  console.log(`${CONNECTIONS} connections, ${DURATION_S} s each, medians of ${ROUNDS} rounds; one server per deployment, same Redis; ratio = p50 / p50 among ${rows[0]!.contexts}, per round\n`);
  console.log("| contexts | seeded in s | req/s | p50 ms | p99 ms | failures | p50 ratio (median; per round) | goal |");
  console.log("|---:|---:|---:|---:|---:|---:|---:|---|");
  const base = rows[0]!;
  for (const row of rows) {
    const ratios = row.runs.map((r, i) => r.p50 / base.runs[i]!.p50);
    const ratio = median(ratios);
    const goal = row === base ? "" : `<= 1.5 ${ratio <= 1.5 ? "PASS" : "MISS"}`;
    const failures = row.runs.reduce((sum, r) => sum + r.failures, 0);
    console.log(
      `| ${row.contexts} | ${row.seedSeconds.toFixed(1)} | ${median(row.runs.map((r) => r.rps)).toFixed(0)} | ${median(row.runs.map((r) => r.p50))} | ${median(row.runs.map((r) => r.p99))} | ${failures} | ${ratio.toFixed(2)} (${ratios.map((r) => r.toFixed(2)).join(", ")}) | ${goal} |`,
    );
  }
  mkdirSync(".bench", { recursive: true });
  writeFileSync(".bench/overview.json", JSON.stringify({ at: new Date().toISOString(), query: OVERVIEW_QUERY, rows }, null, 2));
}

/**
 * Requests/s of slice reads, patches and allocate + release pairs against the plain yoga ceiling,
 * with the CPU time the servers spend per request; then checks that no acknowledged write was lost.
 */
async function requestScenarios(redis: RedisServer): Promise<Row[]> {
  // Both servers stay up; each round measures every scenario right after its ceiling, and the
  // medians over rounds are reported, because this machine's speed drifts from minute to minute.
  const samples = new Map<string, Row[]>();
  const record = (row: Row) => samples.set(row.scenario, [...(samples.get(row.scenario) ?? []), row]);
  const stops: (() => Promise<void>)[] = [];
  try {
    const ceiling = await serveScript("bench/serve.ts", ["ceiling"]);
    const unbounded = await serveScript("bench/serve.ts", ["ceiling", "unbounded"]);
    const app = await serveScript("bench/serve.ts", ["app"], { BENCH_REDIS_URL: redis.url });
    const [ceilingUrl, appUrl] = [ceiling.url, app.url];
    const ceilingCpu = [ceiling.pid];
    const appCpu = [app.pid, redis.process.pid!];
    // The same server on a Redis that persists as the embedded default does (every write on disk before its reply).
    const fsyncRedis = await startRedisServer(["--appendonly", "yes", "--appendfsync", "always"]);
    stops.push(() => fsyncRedis.stop());
    const fsyncApp = await serveScript("bench/serve.ts", ["app"], { BENCH_REDIS_URL: fsyncRedis.url });
    const fsyncCpu = [fsyncApp.pid, fsyncRedis.process.pid!];
    const sizes = [["1 KiB", 1024], ["256 KiB", 256 * 1024]] as const;
    for (const [, bytes] of sizes) {
      for (const url of [appUrl, fsyncApp.url]) {
        await post(url, "mutation($id: ID!, $d: JSON!) { createContext(id: $id, document: $d) { version } }", { id: `bench-${bytes}`, d: documentOf(bytes) });
      }
    }
    const acknowledged = new Map<string, number>(sizes.map(([label]) => [label, 0]));
    await post(appUrl, "mutation($d: JSON!) { createContext(id: \"bench-ledger\", document: $d) { version } }", {
      d: { resources: { limits: { credits: 1e12, tokens: 1e12 } }, policy: { allocation: { maxShare: 0.5 } } },
    });
    let releases = 0;
    const pair: Step[] = [
      {
        query: 'mutation { allocate(contextId: "bench-ledger", request: [{kind: "credits", amount: 10}, {kind: "tokens", amount: 100}], mode: EXACT, leaseMs: 60000, holder: "bench") { id } }',
        keep: (body, state) => (state.allocationId = body.data?.allocate?.id),
      },
      {
        query: 'mutation($a: ID!) { release(allocationId: $a, usage: [{kind: "credits", amount: 1}]) { status } }',
        variablesFrom: (state) => ({ a: state.allocationId }),
        keep: (body) => (releases += body.data?.release ? 1 : 0),
      },
    ];
    for (let round = 1; round <= ROUNDS; round++) {
      const hello = await load("ceiling: yoga { hello }", ceilingUrl, [{ query: "{ hello }" }], ceilingCpu);
      record(hello);
      const helloUnbounded = await load("ceiling: yoga { hello }, no body bound", unbounded.url, [{ query: "{ hello }" }], [unbounded.pid]);
      record(helloUnbounded);
      for (const [label, bytes] of sizes) {
        const slice = await load(`context{slice} ${label}`, appUrl, [
          { query: 'query($id: ID!) { context(id: $id) { version slice(paths: ["/policy/mode", "/execution/counter"]) } }', variables: { id: `bench-${bytes}` } },
        ], appCpu);
        record({ ...slice, ratio: slice.rps / hello.rps, unboundedRatio: slice.rps / helloUnbounded.rps, goal: label === "1 KiB" ? 0.85 : undefined });
      }
      const echo = await load("ceiling: yoga mutation echo", ceilingUrl, [{ query: 'mutation { echo(text: "x") }' }], ceilingCpu);
      record(echo);
      const echoUnbounded = await load("ceiling: yoga mutation echo, no body bound", unbounded.url, [{ query: 'mutation { echo(text: "x") }' }], [unbounded.pid]);
      record(echoUnbounded);
      for (const [label, bytes] of sizes) {
        const patch = await load(`patchContext ${label}`, appUrl, [patchStep(bytes)], appCpu);
        record({ ...patch, ratio: patch.rps / echo.rps, unboundedRatio: patch.rps / echoUnbounded.rps, goal: label === "1 KiB" ? 0.75 : 0.35 });
        acknowledged.set(label, acknowledged.get(label)! + patch.acknowledged);
      }
      for (const [label, bytes] of sizes) {
        const patch = await load(`patchContext ${label}, appendfsync always`, fsyncApp.url, [patchStep(bytes)], fsyncCpu);
        record({ ...patch, ratio: patch.rps / echo.rps, unboundedRatio: patch.rps / echoUnbounded.rps });
      }
      const ledger = await load("allocate + release, one swarm", appUrl, pair, appCpu);
      record({ ...ledger, ratio: ledger.rps / echo.rps, unboundedRatio: ledger.rps / echoUnbounded.rps, goal: 0.65 });
    }
    for (const [label, bytes] of sizes) {
      const after = await post(appUrl, "query($id: ID!) { context(id: $id) { version } }", { id: `bench-${bytes}` });
      // Every acknowledged patch must be in the version; a few per connection and run may have
      // been cut off in flight by autocannon's deadline and still applied.
      const unacknowledged = after.data.context.version - 1 - acknowledged.get(label)!;
      const verdict = unacknowledged >= 0 && unacknowledged <= 4 * ROUNDS * CONNECTIONS ? "no lost update" : "LOST OR EXTRA WRITES";
      console.log(`${label}: version ${after.data.context.version} after ${acknowledged.get(label)} acknowledged patches: ${verdict}`);
    }
    // Each acknowledged release charged 1 credit; releases cut off in flight may have landed too.
    const { data } = await post(appUrl, '{ context(id: "bench-ledger") { budget { consumed { kind amount } } activeAllocations } }');
    const consumed = data.context.budget.consumed.find((a: { kind: string }) => a.kind === "credits")?.amount ?? 0;
    const direct = new Redis(redis.url);
    const violations = await ledgerViolations(direct, "bench", "bench-ledger");
    direct.disconnect();
    const ledgerSound = consumed >= releases && consumed - releases <= 2 * ROUNDS * CONNECTIONS && violations.length === 0;
    console.log(
      `ledger: ${releases} acknowledged releases, ${consumed} credits consumed, ${data.context.activeAllocations} allocations left active, invariant ${violations.length ? `BROKEN: ${violations.join("; ")}` : "holds"}: ${ledgerSound ? "sound" : "NOT SOUND"}`,
    );
  } finally {
    stopAll();
    for (const stop of stops) await stop();
  }
  const rows: Row[] = [...samples.entries()].map(([scenario, runs]) => ({
    scenario,
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    failures: runs.reduce((sum, r) => sum + r.failures, 0),
    cpuMs: runs[0]!.cpuMs === undefined ? undefined : median(runs.map((r) => r.cpuMs!)),
    ratio: runs[0]!.ratio === undefined ? undefined : median(runs.map((r) => r.ratio!)),
    unboundedRatio: runs[0]!.unboundedRatio === undefined ? undefined : median(runs.map((r) => r.unboundedRatio!)),
    ratios: runs[0]!.ratio === undefined ? undefined : runs.map((r) => r.ratio!),
    goal: runs[0]!.goal,
  }));
  return rows;
}

/** The request scenarios' table. */
function printRequests(rows: Row[]): void {
  console.log(`\n${CONNECTIONS} connections, ${DURATION_S} s per scenario, medians of ${ROUNDS} rounds; 2 cores shared by server, Redis and load generator`);
  console.log("req/s counts requests; an allocate + release pair is two, and its ceiling is a pair of echo mutations;");
  console.log("server CPU = utime + stime from /proc of the server process (and, for swarm-context, its redis-server) over the measured run, per request\n");
  console.log("ceiling = plain yoga with its defaults (the goals' reference); no body bound = the same without yoga's request body bound, which swarm-context replaces by its own\n");
  console.log("| scenario | req/s | p50 ms | p99 ms | failures | server CPU ms per request | ratio to ceiling (median; per round) | ratio to ceiling, no body bound | goal |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---|");
  for (const r of rows) {
    const ratio = r.ratio === undefined ? "" : `${(r.ratio * 100).toFixed(0)} % (${r.ratios!.map((x) => (x * 100).toFixed(0)).join(", ")})`;
    const goal = r.goal === undefined ? "" : `>= ${r.goal * 100} % ${r.ratio! >= r.goal ? "PASS" : "MISS"}`;
    const cpu = r.cpuMs === undefined ? "" : r.cpuMs.toFixed(2);
    const unboundedRatio = r.unboundedRatio === undefined ? "" : `${(r.unboundedRatio * 100).toFixed(0)} %`;
    console.log(`| ${r.scenario} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.failures} | ${cpu} | ${ratio} | ${unboundedRatio} | ${goal} |`);
  }
  const perWrite = (scenario: string) => rows.find((r) => r.scenario === scenario)?.cpuMs;
  const [plain, fsync] = [perWrite("patchContext 1 KiB"), perWrite("patchContext 1 KiB, appendfsync always")];
  if (plain !== undefined && fsync !== undefined) {
    console.log(`\nserver CPU per 1 KiB write: ${plain.toFixed(2)} ms, ${fsync.toFixed(2)} ms with appendfsync always; goal <= 0.5 ms ${fsync <= 0.5 ? "PASS" : "MISS"}`);
  }
  mkdirSync(".bench", { recursive: true });
  writeFileSync(".bench/results.json", JSON.stringify({ at: new Date().toISOString(), connections: CONNECTIONS, durationS: DURATION_S, rounds: ROUNDS, rows }, null, 2));
}

/** The ledger page benchmark on a fresh app server of its own (bench/ledger-page.ts), printed. */
async function ledgerPage(redisUrl: string): Promise<void> {
  const served = await serveScript("bench/serve.ts", ["app"], { BENCH_REDIS_URL: redisUrl });
  let rows: LedgerPageRow[];
  try {
    rows = await ledgerPageScenario(served.url, redisUrl, "bench", LEDGER_PAGE_HISTORIES, ROUNDS, LEDGER_PAGE_REQUESTS);
  } finally {
    served.stop();
  }
  const [short, long] = [rows[0]!, rows.at(-1)!];
  const ratios = short.p50s.map((p, i) => long.p50s[i]! / p);
  const ratio = median(long.p50s) / median(short.p50s);
  console.log(`\nledger page: ${LEDGER_PAGE_QUERY.replace(/\s+/g, " ")}`);
  console.log(`50 active allocations (5 with 2 children), p50 of ${LEDGER_PAGE_REQUESTS} sequential requests per round, medians of ${ROUNDS} rounds, swarms alternated\n`);
  console.log("| ended allocations | p50 ms (median; per round) | seeded in s |");
  console.log("|---:|---:|---:|");
  for (const r of rows) console.log(`| ${r.ended} | ${median(r.p50s).toFixed(2)} (${r.p50s.map((p) => p.toFixed(2)).join(", ")}) | ${r.seedSeconds.toFixed(1)} |`);
  console.log(`\np50 ratio ${long.ended} / ${short.ended} ended: ${ratio.toFixed(2)} (per round ${ratios.map((r) => r.toFixed(2)).join(", ")}); goal <= 1.25 ${ratio <= 1.25 ? "PASS" : "MISS"}`);
}

/** The console's first load, reload and time to a 1,000-row swarm list (bench/console-load.ts), on an app server of its own with 1,000 swarms. */
async function consoleScenario(redisUrl: string): Promise<ConsoleLoadResult> {
  const served = await serveScript("bench/serve.ts", ["app"], { BENCH_REDIS_URL: redisUrl, BENCH_KEY_PREFIX: "console" });
  try {
    await seedContexts(redisUrl, "console", 1000);
    return await consoleLoad(new URL(served.url).origin, "#/swarms?size=1000", 'table[aria-label="Swarms"] tbody tr', CONSOLE_LOADS);
  } finally {
    served.stop();
  }
}

function printConsole(result: ConsoleLoadResult): void {
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
  console.log("\nconsole in Chromium (Debian's, headless), 1,000 swarms, 1280 x 800");
  console.log(`first load of /console/ (all files, compressed, headers included): ${kb(result.firstLoad.bytes)} in ${result.firstLoad.requests} responses`);
  console.log(`reload: ${kb(result.reload.bytes)} in ${result.reload.requests} responses (304s)`);
  console.log(
    `navigation to the list showing 1,000 swarms (a new browser context each time, so a first load): median ${median(result.listMs).toFixed(0)} ms (${result.listMs.map((ms) => ms.toFixed(0)).join(", ")})`,
  );
}

/** The cluster benchmark (bench/cluster.ts) on Redis deployments of its own, its servers spawned like the others. */
function clusterScenario(): Promise<ClusterReport> {
  return clusterBench((env) => serveScript("bench/serve.ts", ["app"], env), CLUSTER);
}

async function main(): Promise<void> {
  const redis = await startRedisServer();
  // BENCH_ONLY names one part to run alone.
  const only: Record<string, () => Promise<void>> = {
    requests: async () => printRequests(await requestScenarios(redis)),
    overview: async () => printOverview(await overviewScenario(redis.url)),
    "ledger-page": () => ledgerPage(redis.url),
    deletion: async () => printDeletion(await deletionBench(redis.url, DELETION_ALLOCATIONS)),
    fanout: async () => printFanout(await fanoutScenarios(redis)),
    console: async () => printConsole(await consoleScenario(redis.url)),
    cluster: async () => printCluster(await clusterScenario()),
    "state-check": async () => printStateCheck(await stateCheckBench(redis.url, STATE_CHECK_SLOTS)),
    "contexts-page": async () => printContextsPage(await contextsPage(redis.url)),
    wakeups: async () => printWakeups(await wakeupsBench(WAKEUP_MESSAGES, WAKEUP_SUBSCRIBERS, ROUNDS), WAKEUP_MESSAGES, ROUNDS),
    "wait-replicas": async () =>
      printWaitReplicas(
        await waitReplicasBench({ load, post, serve: async (env) => serveScript("bench/serve.ts", ["app"], env) }, ROUNDS),
        CONNECTIONS,
        DURATION_S,
        ROUNDS,
      ),
  };
  const part = process.env.BENCH_ONLY;
  if (part !== undefined) {
    try {
      if (!(part in only)) throw new Error(`BENCH_ONLY=${part}: not one of ${Object.keys(only).join(", ")}`);
      await only[part]!();
    } finally {
      stopAll();
      await redis.stop();
    }
    return;
  }
  let requestRows: Row[];
  let fanoutReport: FanoutReport;
  let overviewRows: OverviewRow[];
  let deletion: DeletionResult;
  let consoleResult: ConsoleLoadResult;
  let clusterReport: ClusterReport;
  try {
    requestRows = await requestScenarios(redis);
    stopAll();
    overviewRows = await overviewScenario(redis.url);
    fanoutReport = await fanoutScenarios(redis);
    await ledgerPage(redis.url);
    stopAll();
    deletion = await deletionBench(redis.url, DELETION_ALLOCATIONS);
    consoleResult = await consoleScenario(redis.url);
    clusterReport = await clusterScenario();
  } finally {
    stopAll();
    await redis.stop();
  }
  printRequests(requestRows);
  printOverview(overviewRows);
  printFanout(fanoutReport);
  printDeletion(deletion);
  printConsole(consoleResult);
  printCluster(clusterReport);
}

main().catch((err) => {
  stopAll();
  console.error(err);
  process.exit(1);
});
