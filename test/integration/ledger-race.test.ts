// Proves the ledger is never oversubscribed when 4 server processes x 16 clients race 8,000 random operations (4,000 on the cluster project) on a depth-3 tree with tight limits: the invariant holds in atomic snapshots taken throughout and at the end, and the final ledger equals a replay of the acknowledged operations.
import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import { testRedisClient, testRedisEnv } from "../helpers/app.js";
import { ledgerSnapshot, ledgerViolations } from "../../support/ledger-invariant.js";
import { spawnServer } from "../helpers/server-process.js";

const PROCESSES = 4;
const CLIENTS_PER_PROCESS = 16;
/** Fewer on the cluster project's second run: the same 64 racing clients, at half the CI time. */
const OPERATIONS = inject("redisClusterNodes") ? 4_000 : 8_000;
const prefix = `race-${randomUUID()}`;
const contextId = "race";
const children: ChildProcess[] = [];
let urls: string[] = [];
let redis: Redis;

beforeAll(async () => {
  redis = testRedisClient();
  urls = await Promise.all(
    Array.from({ length: PROCESSES }, () => {
      const server = spawnServer(["--port", "0", "--key-prefix", prefix], { ...process.env, ...testRedisEnv() });
      children.push(server.child);
      return server.url;
    }),
  );
});

afterAll(async () => {
  await Promise.all(
    children.map((child) => {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      return exited;
    }),
  );
  redis.disconnect();
});

type Amounts = Record<string, number>;
interface Acked {
  parent: string | null;
  granted: Amounts;
  ownUsage: Amounts;
  released: boolean;
}

async function gql(url: string, query: string, variables: Record<string, unknown>) {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
  return (await res.json()) as { data?: Record<string, any> | null; errors?: { extensions?: { code?: string } }[] };
}

const ALLOCATION = "id parentId granted { kind amount }";
const OPS = {
  allocate: `mutation($c: ID!, $p: ID, $r: [ResourceAmountInput!], $m: AllocationMode!) { allocate(contextId: $c, parentId: $p, request: $r, mode: $m, leaseMs: 600000) { ${ALLOCATION} } }`,
  usage: `mutation($a: ID!, $u: [ResourceAmountInput!]!) { reportUsage(allocationId: $a, usage: $u) { id } }`,
  release: `mutation($a: ID!, $u: [ResourceAmountInput!]) { release(allocationId: $a, usage: $u) { id } }`,
  renew: `mutation($a: ID!) { renewAllocation(allocationId: $a, leaseMs: 600000) { id } }`,
};

const KINDS = ["credits", "tokens"];
const rand = (n: number) => Math.floor(Math.random() * n);
const toMap = (list: { kind: string; amount: number }[]) => Object.fromEntries(list.map((a) => [a.kind, a.amount]));
const randomAmounts = (max: number) => {
  const kinds = KINDS.filter(() => Math.random() < 0.7);
  return (kinds.length ? kinds : [KINDS[rand(2)]!]).map((kind) => ({ kind, amount: 1 + rand(max) }));
};

test(`4 processes x 16 clients x ${OPERATIONS.toLocaleString("en")} operations: never oversubscribed, and the ledger equals the replay`, async () => {
  await gql(urls[0]!, "mutation($d: JSON!) { createContext(id: \"race\", document: $d) { version } }", {
    d: { resources: { limits: { credits: 20_000, tokens: 8_000 } }, policy: { allocation: { maxDepth: 3, maxShare: 0.5 } } },
  });
  const acked = new Map<string, Acked>();
  const ids: string[] = [];
  let issued = 0;
  let refusals = 0;
  const refusalCodes = new Map<string, number>();

  let racing = true;
  let snapshotsChecked = 0;
  const checker = (async () => {
    while (racing) {
      expect(await ledgerViolations(redis, prefix, contextId)).toEqual([]);
      snapshotsChecked++;
      // A snapshot holds Redis for a moment (one script over every allocation): leave the
      // racers most of its time.
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();

  // Mostly pick allocations not known to be ended, sometimes any (to exercise ALLOCATION_ENDED).
  const ended = (id: string): boolean => acked.get(id)!.released || (acked.get(id)!.parent !== null && ended(acked.get(id)!.parent!));
  const choose = (): string | null => {
    if (!ids.length) return null;
    if (Math.random() < 0.1) return ids[rand(ids.length)]!;
    const recent = ids.slice(-200).filter((id) => !ended(id));
    return recent.length ? recent[rand(recent.length)]! : ids[rand(ids.length)]!;
  };

  const client = async (url: string) => {
    while (issued < OPERATIONS) {
      issued++;
      const pick = choose();
      const roll = Math.random();
      let res;
      if (roll < 0.35 || !pick) {
        const parent = Math.random() < 0.4 || !pick || acked.get(pick)!.parent !== null ? null : pick;
        res = await gql(url, OPS.allocate, { c: contextId, p: parent, r: randomAmounts(parent ? 800 : 3000), m: Math.random() < 0.5 ? "EXACT" : "UP_TO" });
        if (res.data?.allocate) {
          const a = res.data.allocate;
          acked.set(a.id, { parent: a.parentId, granted: toMap(a.granted), ownUsage: {}, released: false });
          ids.push(a.id);
        }
      } else if (roll < 0.7) {
        const usage = randomAmounts(400);
        res = await gql(url, OPS.usage, { a: pick, u: usage });
        if (res.data?.reportUsage) for (const u of usage) acked.get(pick)!.ownUsage[u.kind] = (acked.get(pick)!.ownUsage[u.kind] ?? 0) + u.amount;
      } else if (roll < 0.9) {
        const usage = Math.random() < 0.5 ? randomAmounts(200) : undefined;
        res = await gql(url, OPS.release, { a: pick, u: usage });
        if (res.data?.release) {
          const a = acked.get(pick)!;
          a.released = true;
          for (const u of usage ?? []) a.ownUsage[u.kind] = (a.ownUsage[u.kind] ?? 0) + u.amount;
        }
      } else {
        res = await gql(url, OPS.renew, { a: pick });
      }
      if (res.errors) {
        const code = res.errors[0]?.extensions?.code ?? "none";
        expect(["INSUFFICIENT_RESOURCES", "USAGE_EXCEEDED", "ALLOCATION_ENDED"]).toContain(code);
        refusals++;
        refusalCodes.set(code, (refusalCodes.get(code) ?? 0) + 1);
      }
    }
  };
  await Promise.all(urls.flatMap((url) => Array.from({ length: CLIENTS_PER_PROCESS }, () => client(url))));
  racing = false;
  await checker;

  expect(issued).toBeGreaterThanOrEqual(OPERATIONS);
  expect(refusals / issued).toBeGreaterThanOrEqual(0.3);
  expect(snapshotsChecked).toBeGreaterThan(10);
  expect(await ledgerViolations(redis, prefix, contextId)).toEqual([]);
  console.log(`race: ${issued} operations, ${refusals} refused (${[...refusalCodes].map(([c, n]) => `${c} ${n}`).join(", ")}), ${acked.size} allocations, ${snapshotsChecked} snapshots checked`);

  // Replay the acknowledged operations into the final state they imply, and compare.
  const children = new Map<string | null, string[]>();
  for (const [id, a] of acked) {
    if (!children.has(a.parent)) children.set(a.parent, []);
    children.get(a.parent)!.push(id);
  }
  const childrenOf = (parent: string | null) => children.get(parent) ?? [];
  const consumed = (id: string | null, kind: string): number =>
    (id === null ? 0 : (acked.get(id)!.ownUsage[kind] ?? 0)) +
    childrenOf(id).filter(ended).reduce((sum, child) => sum + consumed(child, kind), 0);
  const reserved = (id: string | null, kind: string): number =>
    childrenOf(id).filter((child) => !ended(child)).reduce((sum, child) => sum + (acked.get(child)!.granted[kind] ?? 0), 0);

  const { nodes } = await ledgerSnapshot(redis, prefix, contextId);
  expect(nodes.size - 1).toBe(acked.size);
  for (const kind of KINDS) {
    expect(Number(nodes.get("")![`c:${kind}`] ?? 0)).toBe(consumed(null, kind));
    expect(Number(nodes.get("")![`r:${kind}`] ?? 0)).toBe(reserved(null, kind));
  }
  for (const [id, a] of acked) {
    const node = nodes.get(id.split("#")[1]!)!;
    expect(node.status).toBe(ended(id) ? "RELEASED" : "ACTIVE");
    for (const kind of KINDS) {
      expect(Number(node[`g:${kind}`] ?? 0)).toBe(a.granted[kind] ?? 0);
      expect(Number(node[`c:${kind}`] ?? 0)).toBe(consumed(id, kind));
      expect(Number(node[`r:${kind}`] ?? 0)).toBe(reserved(id, kind));
    }
  }
}, 300_000);
