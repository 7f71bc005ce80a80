// Proves that releasing or expiring an allocation with 2,000 descendants runs in bounded steps (no script ends more than STEP allocations, counted in Redis's MONITOR), deepest first, with a sound ledger between steps (nothing active under an ended allocation, writes inside the ending subtree refused and writing nothing, an opId retry continuing the cascade), and that the sweeper finishes a cascade whose server stopped after its first step.
import { createServer, connect, type Socket } from "node:net";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import { connectRedis } from "../../src/redis/clients.js";
import { Keys } from "../../src/redis/keys.js";
import { LedgerStore } from "../../src/store/ledger.js";
import { type Allocation } from "../../src/model/allocation.js";
import {
  AllocateDocument,
  CreateContextDocument,
  GetLedgerDocument,
  ReleaseDocument,
  RenewAllocationDocument,
  ReportUsageDocument,
} from "../gql/graphql.js";
import { useRedisServer, useTestServer } from "../helpers/app.js";
import { watchCommands } from "../helpers/monitor.js";
import { ledgerSnapshot, ledgerViolations } from "../../support/ledger-invariant.js";
import { redisTimePast } from "../helpers/redis-time.js";

/** The most allocations one script may end: STEP in src/redis/lua/_2-ledger.lua. */
const STEP = 50;
/** Commands one script may send, whatever the size of the subtree it works on. */
const COMMANDS_PER_SCRIPT = 40 * STEP;
const DESCENDANTS = 2_000;

// A Redis of its own: MONITOR must see this file's commands only.
const redisServer = useRedisServer();
const server = useTestServer(() => ({ redisUrl: redisServer().url, leaseSweepMs: 0 }));
let ledgerRedis: Redis;
let keys: Keys;
let ledger: LedgerStore;
const touched = new Set<string>();
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  ledgerRedis = await connectRedis({ url: redisServer().url }, "cascade-test");
  keys = new Keys(server.config.keyPrefix);
  ledger = new LedgerStore(ledgerRedis, keys, server.config);
  // Redis learns the release script here, so a gated store's first call is its first step.
  await server.data(CreateContextDocument, { id: "warm-up", document: { resources: { limits: { credits: 1 } } } });
  await ledger.release((await ledger.allocate("warm-up", { request: credits(1), mode: "EXACT" }, actor)).id, null, actor);
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  for (const id of touched) {
    expect(await ledgerViolations(server.redis, server.config.keyPrefix, id)).toEqual([]);
    // Each test's tree goes, so that `refused` compares a keyspace of one tree.
    await dropKeys(`${server.config.keyPrefix}:{ctx:${id}}:*`);
  }
  touched.clear();
});
afterAll(() => {
  ledgerRedis.disconnect();
});

/** Deletes every key matching `pattern`. */
async function dropKeys(pattern: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, batch] = await server.redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    if (batch.length > 0) await server.redis.del(...batch);
    cursor = next;
  } while (cursor !== "0");
}

const credits = (amount: number) => [{ kind: "credits", amount }];
const actor = { actor: "test" };
interface Tree {
  readonly id: string;
  readonly root: Allocation;
  readonly children: readonly Allocation[];
  readonly grandchildren: readonly Allocation[];
  /** Usage reported in the root's subtree. */
  readonly used: number;
}

const CHILDREN = 40;

/**
 * A budget of 100,000 credits with a root allocation of 50,000 holding 40 children of 1,000, each
 * holding grandchildren of 10: 2,000 descendants, or `descendants` (a multiple of 40). Every
 * child reports 2 credits, every grandchild 1. Built through the store, many calls at once.
 */
async function bigTree(id: string, descendants = DESCENDANTS): Promise<Tree> {
  const perChild = descendants / CHILDREN - 1;
  touched.add(id);
  await server.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 100_000 } } } });
  const allocate = (parentId: string | null, amount: number) => ledger.allocate(id, { parentId, request: credits(amount), mode: "EXACT" }, actor);
  const root = await allocate(null, 50_000);
  const children = await Promise.all(Array.from({ length: CHILDREN }, () => allocate(root.id, 1_000)));
  const grandchildren = await Promise.all(children.flatMap((child) => Array.from({ length: perChild }, () => allocate(child.id, 10))));
  await Promise.all([
    ...children.map((a) => ledger.reportUsage(a.id, credits(2), actor)),
    ...grandchildren.map((a) => ledger.reportUsage(a.id, credits(1), actor)),
  ]);
  // The records of these writes (for the Redis client's resends) would only slow `refused` down.
  await dropKeys(`${server.config.keyPrefix}:{ctx:${id}}:resend:*`);
  return { id, root, children, grandchildren, used: 2 * CHILDREN + CHILDREN * perChild };
}

/** What one script did, as Redis's MONITOR saw it. */
interface ScriptWork {
  /** Commands the script sent. */
  readonly commands: number;
  /** Allocations it ended (status set to RELEASED or EXPIRED). */
  readonly ended: number;
}

/** Runs `run` while MONITOR watches Redis, and returns what each script did meanwhile. */
async function scriptWork<T>(run: () => Promise<T>): Promise<{ result: T; scripts: ScriptWork[] }> {
  const scripts: { commands: number; ended: number }[] = [];
  const watch = await watchCommands(server.config.redisUrl, (args, source) => {
    const command = args[0]!.toLowerCase();
    if (source === "lua") {
      const current = scripts.at(-1)!;
      current.commands++;
      if (command === "hset" && args.some((a, i) => a === "status" && /^(RELEASED|EXPIRED)$/.test(args[i + 1] ?? ""))) current.ended++;
    } else if (command === "evalsha" || command === "eval") {
      scripts.push({ commands: 0, ended: 0 });
    }
  });
  try {
    const result = await run();
    await watch.settle();
    return { result, scripts };
  } finally {
    watch.stop();
  }
}

/** Every script ended at most STEP allocations and sent a bounded number of commands; returns how many allocations they ended. */
function expectBoundedSteps(scripts: readonly ScriptWork[]): number {
  expect(Math.max(...scripts.map((s) => s.ended))).toBeLessThanOrEqual(STEP);
  expect(Math.max(...scripts.map((s) => s.commands))).toBeLessThanOrEqual(COMMANDS_PER_SCRIPT);
  return scripts.reduce((sum, s) => sum + s.ended, 0);
}

/** The allocations of the feed's RELEASED/EXPIRED entries, in feed order. */
async function endedInFeedOrder(id: string): Promise<{ n: number; parent: number | null; status: string }[]> {
  const entries = await server.redis.xrange(`${server.config.keyPrefix}:{ctx:${id}}:feed`, "-", "+");
  return entries
    .map(([, fields]) => Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i]!, fields[2 * i + 1]!])))
    .filter((f) => f.kind === "RELEASED" || f.kind === "EXPIRED")
    .map((f) => JSON.parse(f.allocation!) as { n: number; parent: number | null; status: string });
}

/** Each allocation ended after every one of its descendants (deepest first). */
function expectDeepestFirst(ended: readonly { n: number; parent: number | null }[]): void {
  const done = new Set<number>();
  for (const a of ended) {
    expect(a.parent === null || !done.has(a.parent), `#${a.n} ended after its parent #${a.parent}`).toBe(true);
    done.add(a.n);
  }
}

/** Status of every allocation of the context, by number. */
async function statuses(id: string): Promise<Map<string, string>> {
  const { nodes } = await ledgerSnapshot(server.redis, server.config.keyPrefix, id);
  return new Map([...nodes].filter(([n]) => n !== "").map(([n, node]) => [n, node.status!]));
}

const numberOf = (a: Allocation) => a.id.slice(a.id.lastIndexOf("#") + 1);

/**
 * A TCP proxy in front of the test's Redis for one client that holds every script call the client
 * sends (EVAL/EVALSHA) until `allow()` lets the next one through: between two allowed calls, the
 * ledger stands as one step of a cascade left it.
 */
async function startScriptGate(): Promise<{ url: string; held(): Promise<void>; allow(): void; close(): void }> {
  const sockets = new Set<Socket>();
  const queue: Buffer[] = [];
  let permits = 0;
  let onHeld: (() => void) | null = null;
  let upstream: Socket | null = null;
  const isScript = (chunk: Buffer) => /\r\n(evalsha|eval)\r\n/i.test(chunk.toString("latin1"));
  const drain = () => {
    while (queue.length > 0) {
      if (isScript(queue[0]!)) {
        if (permits === 0) {
          onHeld?.();
          onHeld = null;
          return;
        }
        permits--;
      }
      upstream!.write(queue.shift()!);
    }
  };
  const server = createServer((client) => {
    upstream = connect(redisServer().port, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {});
    }
    client.on("data", (chunk: Buffer) => {
      queue.push(chunk);
      drain();
    });
    upstream.pipe(client);
    client.on("close", () => upstream?.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const close = () => {
    for (const socket of sockets) socket.destroy();
    server.close();
  };
  cleanups.push(close);
  return {
    url: `redis://127.0.0.1:${(server.address() as { port: number }).port}`,
    held: () =>
      new Promise<void>((resolve) => {
        if (queue.length > 0 && permits === 0) resolve();
        else onHeld = resolve;
      }),
    allow: () => {
      permits++;
      drain();
    },
    close,
  };
}

/** Waits until the gate holds the store's next script call; fails if `owner` settles first. */
function nextCallHeld(gate: { held(): Promise<void> }, owner: Promise<unknown>): Promise<void> {
  return Promise.race([gate.held(), owner.then(() => Promise.reject(new Error("the release answered without another script call")))]);
}

/** A ledger store whose script calls pass through a gate: a server whose steps the test takes one by one. */
async function gatedStore() {
  const gate = await startScriptGate();
  const client = await connectRedis({ url: gate.url }, "cascade-owner");
  cleanups.push(() => client.disconnect());
  return { gate, client, store: new LedgerStore(client, keys, server.config) };
}

test("releasing an allocation with 2,000 descendants ends them in steps of at most STEP, deepest first, and answers once with the whole roll-up", async () => {
  const tree = await bigTree("release-big");
  const { result, scripts } = await scriptWork(() => server.data(ReleaseDocument, { allocationId: tree.root.id, usage: credits(5) }));
  expect(result.release).toMatchObject({ id: tree.root.id, status: "RELEASED", consumed: credits(tree.used + 5) });
  expect(expectBoundedSteps(scripts)).toBe(DESCENDANTS + 1);
  expect(scripts.filter((s) => s.ended > 0).length).toBeGreaterThanOrEqual(Math.ceil((DESCENDANTS + 1) / STEP));
  expect(new Set((await statuses(tree.id)).values())).toEqual(new Set(["RELEASED"]));
  const ended = await endedInFeedOrder(tree.id);
  expect(ended).toHaveLength(DESCENDANTS + 1);
  expect(ended.at(-1)!.n).toBe(Number(numberOf(tree.root)));
  expectDeepestFirst(ended);
  const { budget } = (await server.data(GetLedgerDocument, { id: tree.id })).context!;
  expect(budget).toMatchObject({ granted: credits(0), consumed: credits(tree.used + 5), available: credits(100_000 - tree.used - 5) });
});

test("between the steps of a release the ledger is sound, writes inside the ending subtree are refused and write nothing, and a retry of its opId continues it", async () => {
  // Fewer descendants (still several steps), since each refusal below compares every key.
  const tree = await bigTree("release-steps", 400);
  const { gate, store } = await gatedStore();
  const owner = store.release(tree.root.id, null, { actor: "owner", opId: "release-root" });
  await nextCallHeld(gate, owner);
  for (let steps = 0; steps < 3; steps++) {
    gate.allow();
    await nextCallHeld(gate, owner);
    const status = await statuses(tree.id);
    expect(await ledgerViolations(server.redis, server.config.keyPrefix, tree.id)).toEqual([]);
    expect(status.get(numberOf(tree.root))).toBe("ACTIVE");
    const endedCount = [...status.values()].filter((s) => s === "RELEASED").length;
    expect(endedCount).toBeGreaterThan(0);
    expect(endedCount).toBeLessThanOrEqual((steps + 1) * STEP);
  }
  // The root's grant is held in the budget until the last step ends the root.
  const { budget } = (await server.data(GetLedgerDocument, { id: tree.id })).context!;
  expect(budget.granted).toEqual(credits(50_000));

  const status = await statuses(tree.id);
  const active = (list: readonly Allocation[]) => list.find((a) => status.get(numberOf(a)) === "ACTIVE")!;
  const child = active(tree.children);
  const grandchild = active(tree.grandchildren);
  for (const parentId of [tree.root.id, child.id, grandchild.id]) {
    const err = await server.refused("ALLOCATION_ENDED", () => server.request(AllocateDocument, { contextId: tree.id, parentId, request: credits(1), mode: "EXACT" }));
    expect(err.extensions?.status).toBe("RELEASED");
  }
  await server.refused("ALLOCATION_ENDED", () => server.request(ReportUsageDocument, { allocationId: grandchild.id, usage: credits(1) }));
  await server.refused("ALLOCATION_ENDED", () => server.request(ReportUsageDocument, { allocationId: tree.root.id, usage: credits(1) }));
  await server.refused("ALLOCATION_ENDED", () => server.request(RenewAllocationDocument, { allocationId: child.id, leaseMs: 60_000 }));
  await server.refused("ALLOCATION_ENDED", () => server.request(ReleaseDocument, { allocationId: child.id }));
  await server.refused("ALLOCATION_ENDED", () => server.request(ReleaseDocument, { allocationId: tree.root.id }));
  await server.refused("ALLOCATION_ENDED", () => server.request(ReleaseDocument, { allocationId: tree.root.id, opId: "another-release" }));
  // Room outside the ending subtree is not freed yet: the budget still has 50,000 to give.
  const short = await server.refused("INSUFFICIENT_RESOURCES", () => server.request(AllocateDocument, { contextId: tree.id, request: credits(50_001), mode: "EXACT" }));
  expect(short.extensions?.available).toEqual(credits(50_000));

  // The client retries the release with its opId (as after a lost answer): the retry finishes the
  // cascade, and the first call, let go, answers the same.
  const retried = await scriptWork(() => server.data(ReleaseDocument, { allocationId: tree.root.id, opId: "release-root" }));
  expectBoundedSteps(retried.scripts);
  expect(retried.result.release).toMatchObject({ status: "RELEASED", consumed: credits(tree.used) });
  gate.allow();
  const first = await owner;
  expect(first).toEqual(retried.result.release);
  expect(new Set((await statuses(tree.id)).values())).toEqual(new Set(["RELEASED"]));
  expectDeepestFirst(await endedInFeedOrder(tree.id));
});

test("a cascade whose server stops after its first step is finished by the lease sweeper, and its opId then answers the outcome", async () => {
  const tree = await bigTree("release-orphan");
  const { gate, client, store } = await gatedStore();
  const owner = store.release(tree.root.id, credits(3), { actor: "owner", opId: "orphaned" }).catch((err: unknown) => err);
  await nextCallHeld(gate, owner);
  gate.allow();
  // The first step ran; the second is held, and the server stops before sending it.
  await nextCallHeld(gate, owner);
  client.disconnect();
  gate.close();
  expect(await owner).toBeInstanceOf(Error);
  const before = await statuses(tree.id);
  expect(before.get(numberOf(tree.root))).toBe("ACTIVE");
  const endedCount = [...before.values()].filter((s) => s === "RELEASED").length;
  expect(endedCount).toBeGreaterThan(0);
  expect(endedCount).toBeLessThanOrEqual(STEP);
  expect(await ledgerViolations(server.redis, server.config.keyPrefix, tree.id)).toEqual([]);

  const { scripts } = await scriptWork(() => ledger.sweep());
  expect(expectBoundedSteps(scripts)).toBe(DESCENDANTS + 1 - endedCount);
  expect(new Set((await statuses(tree.id)).values())).toEqual(new Set(["RELEASED"]));
  expectDeepestFirst(await endedInFeedOrder(tree.id));
  // Nothing else is due: the context stays filed only for when retention prunes the oldest ended.
  const [, oldestEnded] = await server.redis.zrange(keys.context(tree.id).ended, 0, 0, "WITHSCORES");
  expect(Number(await server.redis.zscore(keys.indexOf(tree.id).due, tree.id))).toBe(Number(oldestEnded) + server.config.endedAllocationRetentionMs);
  const replay = await server.data(ReleaseDocument, { allocationId: tree.root.id, usage: credits(3), opId: "orphaned" });
  expect(replay.release).toMatchObject({ status: "RELEASED", consumed: credits(tree.used + 3) });
  const { budget } = (await server.data(GetLedgerDocument, { id: tree.id })).context!;
  expect(budget).toMatchObject({ granted: credits(0), consumed: credits(tree.used + 3) });
});

test("a lease that runs out over 2,000 descendants expires in steps of at most STEP; checks hold the room a step has not freed", async () => {
  const tree = await bigTree("expire-big");
  const lapsed = (await server.data(RenewAllocationDocument, { allocationId: tree.root.id, leaseMs: 1 })).renewAllocation;
  await redisTimePast(server.redis, lapsed.expiresAt!);

  // Refused operations write nothing, and their work does not grow with the subtree either.
  const refusals = await scriptWork(async () => {
    const grandchild = tree.grandchildren.at(-1)!;
    const err = await server.refused("ALLOCATION_ENDED", () => server.request(AllocateDocument, { contextId: tree.id, parentId: grandchild.id, request: credits(1), mode: "EXACT" }));
    expect(err.extensions?.status).toBe("EXPIRED");
    // One step cannot end the root, so the root's 50,000 stay held for this check.
    const short = await server.refused("INSUFFICIENT_RESOURCES", () => server.request(AllocateDocument, { contextId: tree.id, request: credits(50_001), mode: "EXACT" }));
    expect(short.extensions?.available).toEqual(credits(50_000));
  });
  expect(expectBoundedSteps(refusals.scripts)).toBe(0);

  // An accepted operation ends one step's worth of the overdue subtree; the rest waits.
  const accepted = await scriptWork(() => server.data(AllocateDocument, { contextId: tree.id, request: credits(10), mode: "EXACT" }));
  const first = expectBoundedSteps(accepted.scripts);
  expect(first).toBeGreaterThan(0);
  const mid = await statuses(tree.id);
  expect(mid.get(numberOf(tree.root))).toBe("ACTIVE");
  expect([...mid.values()].filter((s) => s === "EXPIRED")).toHaveLength(first);
  expect(await ledgerViolations(server.redis, server.config.keyPrefix, tree.id)).toEqual([]);

  const swept = await scriptWork(() => ledger.sweep());
  expect(expectBoundedSteps(swept.scripts)).toBe(DESCENDANTS + 1 - first);
  const after = await statuses(tree.id);
  expect([...after].filter(([n]) => n !== numberOf(accepted.result.allocate)).every(([, s]) => s === "EXPIRED")).toBe(true);
  const ended = await endedInFeedOrder(tree.id);
  expect(ended.every((a) => a.status === "EXPIRED")).toBe(true);
  expectDeepestFirst(ended);
  const { budget } = (await server.data(GetLedgerDocument, { id: tree.id })).context!;
  expect(budget).toMatchObject({ granted: credits(10), consumed: credits(tree.used) });
});
