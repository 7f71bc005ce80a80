// WebSocket fan-out of a change feed: delivery latency and rate of one swarm's changes to many subscribers, and the server memory an idle subscription costs.
import { WebSocket } from "ws";
import { cpuSeconds, rssKb } from "./proc.js";

const SUBSCRIPTION = "subscription($id: ID!) { contextChanges(contextIds: [$id]) { changes { contextId seq version kind paths at } } }";
/** How long one update may take to reach every subscriber before the missing deliveries count as lost. */
const DELIVERY_TIMEOUT_MS = 2_000;
/** Connections opened at once, so that neither side drowns in handshakes. */
const CHUNK = 200;
/** Updates sent before measuring at least, so that both ends run JIT-compiled code when measured. */
const WARM_UP_UPDATES = 10;
/** How long to let the server settle after the last subscribe before its memory is read. */
const SETTLE_MS = 1_000;

export interface FanoutResult {
  subscribers: number;
  updates: number;
  /** One change received by one subscriber, counted only while its update was awaited. */
  deliveries: number;
  lost: number;
  p50: number;
  p99: number;
  deliveriesPerSecond: number;
  /** Subscriptions per WebSocket connection. */
  perConnection: number;
  /** CPU time (utime + stime) of the server's processes per 1,000 deliveries while measuring, in ms; absent when no process was given. */
  cpuMsPer1000?: number;
}

export interface MemoryResult {
  subscriptions: number;
  /** Of them, how many received an update sent after the memory was read. */
  live: number;
  rssBeforeKb: number;
  rssAfterKb: number;
  kbPerSubscription: number;
}

interface Change {
  contextId: string;
  version: number;
  kind: string;
}

async function post(url: string, query: string, variables?: unknown): Promise<any> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: any; errors?: { message: string }[] };
  if (body.errors?.length) throw new Error(`${url}: ${body.errors.map((e) => e.message).join("; ")}`);
  return body.data;
}

/** The patch argument's type as the server declares it: swarm-context takes JSONPatchOperation inputs, the baseline JSON. */
async function patchArgumentType(url: string): Promise<string> {
  const data = await post(url, '{ __type(name: "Mutation") { fields { name args { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }');
  const field = data.__type.fields.find((f: { name: string }) => f.name === "patchContext");
  const arg = field?.args.find((a: { name: string }) => a.name === "patch");
  if (!arg) throw new Error(`${url} has no patchContext(patch:)`);
  const print = (t: { kind: string; name: string | null; ofType: any }): string =>
    t.kind === "NON_NULL" ? `${print(t.ofType)}!` : t.kind === "LIST" ? `[${print(t.ofType)}]` : t.name!;
  return print(arg.type);
}

/** Writes one document update, with a mutation typed for the server at hand. */
async function patcher(url: string): Promise<(id: string, n: number) => Promise<number>> {
  const query = `mutation($id: ID!, $p: ${await patchArgumentType(url)}) { patchContext(id: $id, patch: $p) { version } }`;
  return async (id, n) => (await post(url, query, { id, p: [{ op: "replace", path: "/blackboard/n", value: n }] })).patchContext.version;
}

async function createContext(url: string, id: string): Promise<number> {
  const data = await post(url, "mutation($id: ID!, $d: JSON!) { createContext(id: $id, document: $d) { version } }", { id, d: { blackboard: { n: 0 } } });
  return data.createContext.version;
}

/** Called with the subscriber's index, each change a message carries, and when the message arrived. */
type OnChange = (subscriber: number, change: Change, receivedAt: number) => void;

interface Subscriptions {
  sockets: WebSocket[];
  /** Rejects on the first protocol error, error message or unexpected close of any subscription. */
  fault: Promise<never>;
  close(): Promise<void>;
}

/**
 * Opens graphql-transport-ws connections carrying one contextChanges subscription per id in
 * `ids`, `perConnection` on each (subscription ids "1", "2", ... per connection; subscriber index
 * = position in `ids`); resolves once every connection is acknowledged and its subscribes sent.
 */
async function subscribe(httpUrl: string, ids: string[], onChange: OnChange, perConnection = 1): Promise<Subscriptions> {
  const wsUrl = httpUrl.replace(/^http/, "ws");
  const sockets: WebSocket[] = [];
  let closing = false;
  let fail!: (err: Error) => void;
  const fault = new Promise<never>((_resolve, reject) => (fail = reject));
  fault.catch(() => {}); // observed by whoever races it; a fault nobody awaits is not unhandled
  /** Connection `index` carries the subscriptions to `subIds`, subscribers first..first+subIds.length-1. */
  const open = (index: number, first: number, subIds: string[]) =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(wsUrl, "graphql-transport-ws", { perMessageDeflate: false });
      sockets.push(ws);
      const failed = (why: string) => {
        const err = new Error(`connection ${index}: ${why}`);
        reject(err);
        fail(err);
      };
      ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init" })));
      ws.on("error", (err) => failed(err.message));
      ws.on("unexpected-response", (_req, res) => failed(`HTTP ${res.statusCode} instead of a WebSocket upgrade`));
      ws.on("close", (code, reason) => closing || failed(`closed ${code} ${reason.toString()}`));
      ws.on("message", (data) => {
        // The receipt time is taken before parsing, so the client's own cost stays out of it.
        const receivedAt = performance.now();
        const message = JSON.parse(data.toString());
        switch (message.type) {
          case "connection_ack":
            subIds.forEach((id, k) => ws.send(JSON.stringify({ id: String(k + 1), type: "subscribe", payload: { query: SUBSCRIPTION, variables: { id } } })));
            resolve();
            break;
          case "ping":
            ws.send(JSON.stringify({ type: "pong" }));
            break;
          case "next": {
            if (message.payload.errors?.length) failed(`errors ${JSON.stringify(message.payload.errors)}`);
            const subscriber = first + Number(message.id) - 1;
            for (const change of message.payload.data?.contextChanges?.changes ?? []) onChange(subscriber, change, receivedAt);
            break;
          }
          case "error":
            failed(`error ${JSON.stringify(message.payload)}`);
            break;
          case "complete":
            failed("subscription completed by the server");
            break;
        }
      });
    });
  const close = async () => {
    closing = true;
    const closed = sockets.map((ws) => (ws.readyState === WebSocket.CLOSED ? undefined : new Promise((resolve) => ws.once("close", resolve))));
    for (const ws of sockets) ws.terminate();
    await Promise.all(closed);
  };
  try {
    const connections = Math.ceil(ids.length / perConnection);
    for (let start = 0; start < connections; start += CHUNK) {
      const chunk = Array.from({ length: Math.min(CHUNK, connections - start) }, (_, i) => start + i);
      await Promise.all(chunk.map((c) => open(c, c * perConnection, ids.slice(c * perConnection, (c + 1) * perConnection))));
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { sockets, fault, close };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves after `ms` without keeping the process alive meanwhile, since most of these lose their race. */
const timeout = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)).unref());

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * `subscribers` subscriptions to one new swarm, `perConnection` per WebSocket connection;
 * `updates` patches, one at a time, each awaited until every subscriber has its change or
 * DELIVERY_TIMEOUT_MS passed. Latency runs from just before the mutation is sent to the message's
 * arrival; a change is recognised by its version. The CPU time of `serverPids` (the server and
 * its redis-server) is read before and after the measured updates.
 */
export async function fanout(url: string, subscribers: number, updates: number, perConnection = 1, serverPids: readonly number[] = []): Promise<FanoutResult> {
  const id = `fanout-${subscribers}-${perConnection}-${Date.now().toString(36)}`;
  const patch = await patcher(url);
  let version = await createContext(url, id);
  // The version whose change is awaited; receivedVersion[i] keeps a subscriber from counting it twice.
  let awaited = Number.POSITIVE_INFINITY;
  let t0 = 0;
  let received = 0;
  let allReceived = () => {};
  const receivedVersion = new Int32Array(subscribers);
  const latencies: number[] = [];
  // During warm-up any change from the first warm-up on proves the subscription live.
  let warmingFrom = Number.POSITIVE_INFINITY;
  let live = 0;
  const onChange: OnChange = (subscriber, change, receivedAt) => {
    if (change.contextId !== id) return;
    if (warmingFrom !== Number.POSITIVE_INFINITY) {
      if (change.version >= warmingFrom && receivedVersion[subscriber] === 0) {
        receivedVersion[subscriber] = change.version;
        if (++live === subscribers) allReceived();
      }
      return;
    }
    if (change.version !== awaited || receivedVersion[subscriber] === awaited) return;
    receivedVersion[subscriber] = awaited;
    latencies.push(receivedAt - t0);
    if (++received === subscribers) allReceived();
  };
  const subs = await subscribe(url, Array.from({ length: subscribers }, () => id), onChange, perConnection);
  const serverCpu = () => serverPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  /** Sends update `n` and waits for its change at every subscriber or the timeout; resolves with how many missed it. */
  const deliver = async (n: number): Promise<number> => {
    received = 0;
    const everyone = new Promise<void>((resolve) => (allReceived = resolve));
    awaited = version + 1;
    t0 = performance.now();
    const acknowledged = await Promise.race([patch(id, n), subs.fault]);
    if (acknowledged !== awaited) throw new Error(`${url}: patch ${n} made version ${acknowledged}, expected ${awaited}`);
    version = acknowledged;
    await Promise.race([everyone, timeout(DELIVERY_TIMEOUT_MS - (performance.now() - t0)), subs.fault]);
    return subscribers - received;
  };
  try {
    // A subscribe is registered some time after it is sent; warm-up updates go out until every
    // subscriber has seen one, so that no measured update finds a subscription not yet live.
    warmingFrom = version + 1;
    const warmDeadline = performance.now() + 30_000;
    // Each with a value of its own: a patch that leaves the document as it is writes no change.
    for (let attempt = 1; live < subscribers; attempt++) {
      if (performance.now() > warmDeadline) throw new Error(`${url}: only ${live} of ${subscribers} subscriptions live after 30 s`);
      const everyone = new Promise<void>((resolve) => (allReceived = resolve));
      version = await Promise.race([patch(id, -(WARM_UP_UPDATES + attempt)), subs.fault]);
      await Promise.race([everyone, timeout(500), subs.fault]);
    }
    warmingFrom = Number.POSITIVE_INFINITY;
    for (let n = 1; n <= WARM_UP_UPDATES; n++) await deliver(-n);
    latencies.length = 0;
    let lost = 0;
    const cpuBefore = serverCpu();
    const started = performance.now();
    for (let n = 1; n <= updates; n++) lost += await deliver(n);
    const elapsedS = (performance.now() - started) / 1000;
    const cpuS = serverCpu() - cpuBefore;
    awaited = Number.POSITIVE_INFINITY;
    latencies.sort((x, y) => x - y);
    return {
      subscribers,
      updates,
      deliveries: latencies.length,
      lost,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      deliveriesPerSecond: latencies.length / elapsedS,
      perConnection,
      ...(serverPids.length > 0 ? { cpuMsPer1000: (cpuS * 1000 * 1000) / latencies.length } : {}),
    };
  } finally {
    await subs.close();
  }
}

/**
 * RSS growth of server process `pid` per idle subscription: `count` connections of one
 * subscription each, `perSwarm` to a swarm (a swarm's agents share its feed). A first batch
 * opened before the baseline reading pays for what the server sets up once. Afterwards one update
 * per swarm checks that every subscription was live.
 */
export async function idleSubscriptionMemory(url: string, pid: number, count = 5000, perSwarm = 50): Promise<MemoryResult> {
  const stamp = Date.now().toString(36);
  const swarms = Math.ceil(count / perSwarm);
  const ids = Array.from({ length: swarms }, (_, s) => `idle-${stamp}-${s}`);
  for (let start = 0; start < swarms; start += CHUNK) await Promise.all(ids.slice(start, start + CHUNK).map((id) => createContext(url, id)));
  const warmIds = Array.from({ length: perSwarm }, () => `idle-${stamp}-warm`);
  await createContext(url, warmIds[0]!);
  const seen = new Uint8Array(count);
  let live = 0;
  const warm = await subscribe(url, warmIds, () => {});
  const subscriptionIds = Array.from({ length: count }, (_, i) => ids[Math.floor(i / perSwarm)]!);
  try {
    await sleep(SETTLE_MS);
    const rssBeforeKb = rssKb(pid);
    const subs = await subscribe(url, subscriptionIds, (subscriber, change) => {
      if (change.kind !== "CREATED" && seen[subscriber] === 0) {
        seen[subscriber] = 1;
        live++;
      }
    });
    try {
      await sleep(SETTLE_MS);
      const rssAfterKb = rssKb(pid);
      const patch = await patcher(url);
      for (let start = 0; start < swarms; start += CHUNK) await Promise.all(ids.slice(start, start + CHUNK).map((id) => patch(id, 1)));
      const deadline = performance.now() + 10_000;
      while (live < count && performance.now() < deadline) await sleep(50);
      return { subscriptions: count, live, rssBeforeKb, rssAfterKb, kbPerSubscription: (rssAfterKb - rssBeforeKb) / count };
    } finally {
      await subs.close();
    }
  } finally {
    await warm.close();
  }
}
