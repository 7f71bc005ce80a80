// Proves that on a Redis Cluster of three masters the deployment-wide indexes, split into shards over several masters, still give each `contexts` walk (by id and by update time, any page size, with idPrefix and updatedAfter) every swarm exactly once and in order with exact totals, let the lease sweeper expire leases of swarms on every master, and keep a re-created id's counters above its own shard's floor.
import { expect, test } from "vitest";
import {
  AllocateDocument,
  CreateContextDocument,
  DeleteContextDocument,
  GetAllocationDocument,
  GetHistoryDocument,
  MergeContextDocument,
  OverviewDocument,
  PatchContextDocument,
  type ContextOrder,
  type OverviewQuery,
} from "../gql/graphql.js";
import { CLUSTER_INDEX_SHARDS } from "../../src/redis/keys.js";
import { deploymentKeys } from "../../src/server/app.js";
import { useTestServer } from "../helpers/app.js";
import { Backoff } from "../helpers/backoff.js";
import { dropFromIndex, fileInIndex, readIndex } from "../helpers/indexes.js";

/** A busy lease sweeper and the shortest deleted-context retention, so that expiries and prunes happen within a test. */
const server = useTestServer({ leaseSweepMs: 20, deletedContextRetentionMs: 1_000 });
const keys = () => deploymentKeys(server.config);

/** The port of the master that serves the slot of `key` now (CLUSTER KEYSLOT, CLUSTER SLOTS). */
async function masterOf(key: string): Promise<number> {
  const slot = Number(await server.redis.call("CLUSTER", "KEYSLOT", key));
  const ranges = (await server.redis.call("CLUSTER", "SLOTS")) as [number, number, [string, number]][];
  return ranges.find(([from, to]) => slot >= from && slot <= to)![2][1];
}

/** The masters (ports) the contexts of `ids` are on. */
async function mastersOfContexts(ids: readonly string[]): Promise<Set<number>> {
  return new Set(await Promise.all(ids.map((id) => masterOf(keys().context(id).meta))));
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const backoff = new Backoff(5, 100);
  for (let polls = 0; !(await check()); polls++) {
    if (polls > 300) throw new Error(`never: ${what}`);
    await backoff.wait();
  }
}

/** Every id of a walk through the list, page by page, and the totalCount of each page. */
async function walk(vars: { first: number; idPrefix?: string; updatedAfter?: string; orderBy: ContextOrder }): Promise<{ ids: string[]; totals: number[] }> {
  const ids: string[] = [];
  const totals: number[] = [];
  let after: string | null = null;
  for (;;) {
    const { contexts }: OverviewQuery = await server.data(OverviewDocument, { ...vars, after });
    ids.push(...contexts.edges.map((e) => e.node.id));
    totals.push(contexts.totalCount!);
    if (!contexts.pageInfo.hasNextPage) return { ids, totals };
    if (ids.length > 500) throw new Error(`the walk did not end: ${ids.slice(-10)}`);
    after = contexts.pageInfo.endCursor!;
  }
}

test("the indexes are sharded over several masters, and walks by id and by update time give every swarm once, in order, with exact totals", async () => {
  const k = keys();
  expect(k.indexShards).toBe(CLUSTER_INDEX_SHARDS);
  const shardMasters = new Set(await Promise.all(k.indexes.map((ix) => masterOf(ix.contexts))));
  expect(shardMasters.size, "index shards on at least two masters").toBeGreaterThanOrEqual(2);

  const ids = Array.from({ length: 48 }, (_, i) => `ix-${String(i).padStart(2, "0")}`);
  expect((await mastersOfContexts(ids)).size, "swarms on every master").toBe(3);
  const updatedAt = new Map<string, number>();
  // All at once, so that many share an updatedAt (ms): ties are broken by id across shards.
  await Promise.all(
    ids.map(async (id) => updatedAt.set(id, Date.parse((await server.data(CreateContextDocument, { id, document: { n: 0 } })).createContext.updatedAt))),
  );
  // Then every third one written again, out of id order: the update order is not the id order.
  for (const id of ids.filter((_, i) => i % 3 === 0).reverse()) {
    updatedAt.set(id, Date.parse((await server.data(PatchContextDocument, { id, patch: [{ op: "replace", path: "/n", value: 1 }] })).patchContext.updatedAt));
  }
  expect([...(await readIndex(server.redis, k, "contexts")).keys()], "each id filed in a shard").toEqual(ids);
  expect(new Set(ids.map((id) => k.shardOf(id))).size, "the swarms spread over many shards").toBeGreaterThan(CLUSTER_INDEX_SHARDS / 2);
  // Index entries of no context (the indexes are supersets), a dozen beside each swarm in both
  // orders: every shard then holds more than a list's first batch reads of it, so the merge must
  // stop each batch at the earliest last entry of a shard with more.
  const fillers = new Map(ids.flatMap((id) => Array.from({ length: 12 }, (_, i) => [`${id}-f${String(i).padStart(2, "0")}`, updatedAt.get(id)!] as const)));
  await fileInIndex(server.redis, k, "contexts", new Map([...fillers.keys()].map((id) => [id, 0])));
  await fileInIndex(server.redis, k, "byUpdate", fillers);
  const entries = new Map([...updatedAt, ...fillers]);

  const byId = [...ids].sort();
  const byUpdate = [...ids].sort((a, b) => updatedAt.get(b)! - updatedAt.get(a)! || (a < b ? 1 : -1));
  // A time in the middle of the update order: the walks after it hold about half.
  const since = updatedAt.get(byUpdate[20]!)!;
  const recent = (list: string[]) => list.filter((id) => updatedAt.get(id)! > since);
  expect(recent(byUpdate).length).toBeGreaterThan(0);
  /** What totalCount counts: the index entries of the filter, fillers too. */
  const total = (prefix: string, after: number | null) => [...entries].filter(([id, at]) => id.startsWith(prefix) && (after === null || at > after)).length;
  for (const first of [1, 4, 7, 50]) {
    for (const [orderBy, expected] of [["ID", byId], ["UPDATED_AT_DESC", byUpdate]] as const) {
      const what = `${orderBy}, first ${first}`;
      const all = await walk({ first, orderBy });
      expect(all.ids, what).toEqual(expected);
      expect(new Set(all.totals), what).toEqual(new Set([total("", null)]));
      const prefixed = await walk({ first, orderBy, idPrefix: "ix-1" });
      expect(prefixed.ids, `${what}, idPrefix ix-1`).toEqual(expected.filter((id) => id.startsWith("ix-1")));
      expect(new Set(prefixed.totals), `${what}, idPrefix ix-1`).toEqual(new Set([total("ix-1", null)]));
      const later = await walk({ first, orderBy, updatedAfter: new Date(since).toISOString() });
      expect(later.ids, `${what}, updatedAfter`).toEqual(recent(expected));
      expect(new Set(later.totals), `${what}, updatedAfter`).toEqual(new Set([total("", since)]));
      const both = await walk({ first, orderBy, idPrefix: "ix-2", updatedAfter: new Date(since).toISOString() });
      expect(both.ids, `${what}, both`).toEqual(recent(expected).filter((id) => id.startsWith("ix-2")));
      expect(new Set(both.totals), `${what}, both`).toEqual(new Set([total("ix-2", since)]));
    }
  }
  await dropFromIndex(server.redis, k, "contexts", [...fillers.keys()]);
  await dropFromIndex(server.redis, k, "byUpdate", [...fillers.keys()]);
});

test("the lease sweeper expires the leases of swarms on every master", async () => {
  const ids = Array.from({ length: 24 }, (_, i) => `lease-${String(i).padStart(2, "0")}`);
  expect((await mastersOfContexts(ids)).size, "swarms on every master").toBe(3);
  const allocations = await Promise.all(
    ids.map(async (id) => {
      await server.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 10 } } } });
      return (await server.data(AllocateDocument, { contextId: id, request: [{ kind: "credits", amount: 1 }], mode: "EXACT", leaseMs: 50 })).allocate;
    }),
  );
  expect(new Set(ids.map((id) => keys().shardOf(id))).size, "due in many shards").toBeGreaterThan(CLUSTER_INDEX_SHARDS / 2);
  const expired = async (allocationId: string) => (await server.data(GetAllocationDocument, { id: allocationId })).allocation?.status === "EXPIRED";
  await until(async () => (await Promise.all(allocations.map((a) => expired(a.id)))).every(Boolean), "every lease expired");
  for (const a of allocations) {
    const { context } = await server.data(GetHistoryDocument, { id: a.contextId });
    expect(context!.history.at(-1), a.contextId).toMatchObject({ kind: "EXPIRED", actor: "lease-sweeper" });
  }
});

test("an id created again after its prune starts above its own shard's counter floor, not another shard's", async () => {
  const k = keys();
  // Two ids whose shards are on different masters: one with a long feed, one with a short one.
  const candidates = Array.from({ length: 40 }, (_, i) => `floor-${i}`);
  const masters = await Promise.all(candidates.map((id) => masterOf(k.indexOf(id).counterFloor)));
  const long = candidates[0]!;
  const short = candidates.find((_, i) => masters[i] !== masters[0])!;
  expect(short).toBeDefined();
  await server.data(CreateContextDocument, { id: long, document: { n: 0, resources: { limits: { credits: 10 } } } });
  for (let n = 1; n <= 4; n++) await server.data(MergeContextDocument, { id: long, merge: { n } });
  await server.data(CreateContextDocument, { id: short, document: { n: 0 } });
  const floors = new Map([
    [long, (await server.data(DeleteContextDocument, { id: long })).deleteContext.seq],
    [short, (await server.data(DeleteContextDocument, { id: short })).deleteContext.seq],
  ]);
  expect(floors.get(long)).toBeGreaterThan(floors.get(short)!);
  await until(async () => (await Promise.all([long, short].map((id) => server.redis.exists(k.context(id).seq)))).every((n) => n === 0), "both pruned");
  for (const [id, floor] of floors) expect(Number(await server.redis.get(k.indexOf(id).counterFloor)), `${id}'s shard's floor`).toBe(floor);

  for (const [id, floor] of floors) {
    const created = (await server.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 10 } } } })).createContext;
    expect(created.seq, id).toBe(floor + 1);
  }
  const again = (await server.data(AllocateDocument, { contextId: long, request: [{ kind: "credits", amount: 1 }], mode: "EXACT" })).allocate;
  expect(again.id).toBe(`${long}#${floors.get(long)! + 1}`);
});
