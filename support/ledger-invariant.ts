import type { RedisClient } from "../src/redis/clients.js";
import type { AllocationStatus } from "../src/model/allocation.js";
import { Keys } from "../src/redis/keys.js";

/**
 * Reads a swarm's whole ledger straight from Redis (not through the server's code) and returns
 * every broken rule, or [] when it is sound:
 * - per kind at every node: consumed + reserved <= granted (the budget's granted = limits;
 *   skipped for the budget when `limitsLowered`, since lowering limits live is allowed);
 * - reserved = sum of granted of the node's active children;
 * - an active allocation's parent is active (or the budget); amounts are never negative;
 * - the read indexes and the ended set agree with the hashes (indexViolations);
 * - an allocation's d:<kind> (what ending its active subtree will still charge to it) is the sum of
 *   its active children's consumed + d:, plus, while it is released in steps, its final usage
 *   (so at least that sum); 0 once it has ended.
 */
export async function ledgerViolations(redis: RedisClient, prefix: string, contextId: string, limitsLowered = false): Promise<string[]> {
  const snapshot = await ledgerSnapshot(redis, prefix, contextId);
  const { nodes, limits } = snapshot;
  const problems: string[] = indexViolations(prefix, contextId, snapshot);
  const kindsOf = (node: Record<string, string>) =>
    new Set(Object.keys(node).filter((f) => /^[gcrq]:/.test(f)).map((f) => f.slice(2)));
  // Active children by parent, in one pass: a snapshot of thousands of allocations is checked
  // many times during a race, so this must stay linear.
  const activeChildrenOf = new Map<string, Record<string, string>[]>();
  for (const [n, node] of nodes) {
    if (n === "" || node.status !== "ACTIVE") continue;
    const parent = node.parent ?? "";
    const siblings = activeChildrenOf.get(parent);
    if (siblings) siblings.push(node);
    else activeChildrenOf.set(parent, [node]);
  }
  for (const [n, node] of nodes) {
    const name = n === "" ? "budget" : `#${n}`;
    const kinds = kindsOf(node);
    if (n === "") for (const kind of Object.keys(limits)) kinds.add(kind);
    const activeChildren = activeChildrenOf.get(n) ?? [];
    for (const kind of kinds) {
      const granted = Number(n === "" ? (limits[kind] ?? 0) : (node[`g:${kind}`] ?? 0));
      const consumed = Number(node[`c:${kind}`] ?? 0);
      const reserved = Number(node[`r:${kind}`] ?? 0);
      const childSum = activeChildren.reduce((sum, child) => sum + Number(child[`g:${kind}`] ?? 0), 0);
      if (consumed < 0 || reserved < 0) problems.push(`${name} ${kind}: negative consumed ${consumed} or reserved ${reserved}`);
      if (reserved !== childSum) problems.push(`${name} ${kind}: reserved ${reserved} but active children hold ${childSum}`);
      if (consumed + reserved > granted && !(n === "" && limitsLowered)) {
        problems.push(`${name} ${kind}: consumed ${consumed} + reserved ${reserved} > granted ${granted}`);
      }
    }
    if (n !== "") {
      const dKinds = new Set([...kinds, ...Object.keys(node).filter((f) => f.startsWith("d:")).map((f) => f.slice(2))]);
      for (const kind of dKinds) {
        const pending = Number(node[`d:${kind}`] ?? 0);
        const expected =
          node.status === "ACTIVE"
            ? activeChildren.reduce((sum, child) => sum + Number(child[`c:${kind}`] ?? 0) + Number(child[`d:${kind}`] ?? 0), 0)
            : 0;
        if (node.releaseOp ? pending < expected : pending !== expected) {
          problems.push(`${name} ${kind}: d ${pending} but its active subtree will charge ${expected}`);
        }
      }
    }
    if (n !== "" && node.status === "ACTIVE" && node.parent && nodes.get(node.parent)?.status !== "ACTIVE") {
      problems.push(`${name} is active under ended #${node.parent}`);
    }
  }
  return problems;
}

/** Flat [field, value, ...] into an object. */
function record(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

/**
 * Reads the budget, limits and every allocation hash in one atomic step (a read-only script), so
 * the snapshot is consistent even while writers race. KEYS[1], the context's meta, routes it to
 * the context's slot on a Redis Cluster.
 */
const SNAPSHOT = `#!lua flags=no-writes
local base = ARGV[1]
local indexes = {}
for _, k in ipairs(redis.call('SMEMBERS', base .. ':indexes')) do
  indexes[#indexes + 1] = k
  indexes[#indexes + 1] = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
end
local out = { redis.call('HGETALL', base .. ':limits'), redis.call('HGETALL', base .. ':root'), indexes,
  redis.call('ZRANGE', base .. ':ended', 0, -1, 'WITHSCORES') }
for _, n in ipairs(redis.call('ZRANGE', base .. ':allocs', 0, -1)) do
  out[#out + 1] = n
  out[#out + 1] = redis.call('HGETALL', base .. ':alloc:' .. n)
end
return out`;

export interface LedgerSnapshot {
  /** "" is the budget; others are allocation numbers. */
  readonly nodes: Map<string, Record<string, string>>;
  readonly limits: Record<string, string>;
  /** Each read index key listed in the context's set of indexes -> its members and their scores. */
  readonly indexes: Map<string, Record<string, string>>;
  /** The ended allocations' set: number -> score (endedAt). */
  readonly ended: Record<string, string>;
}

export async function ledgerSnapshot(redis: RedisClient, prefix: string, contextId: string): Promise<LedgerSnapshot> {
  const keys = new Keys(prefix);
  const reply = (await redis.eval(SNAPSHOT, 1, keys.context(contextId).meta, keys.contextBase(contextId))) as (string | string[])[];
  const nodes = new Map<string, Record<string, string>>([["", record(reply[1] as string[])]]);
  const flatIndexes = reply[2] as unknown as (string | string[])[];
  const indexes = new Map<string, Record<string, string>>();
  for (let i = 0; i < flatIndexes.length; i += 2) indexes.set(flatIndexes[i] as string, record(flatIndexes[i + 1] as string[]));
  for (let i = 4; i < reply.length; i += 2) nodes.set(reply[i] as string, record(reply[i + 1] as string[]));
  return { nodes, limits: record(reply[0] as string[]), indexes, ended: record(reply[3] as string[]) };
}

/**
 * The read index keys (keys.ts allocationIndex, childIndex) an allocation hash must be in: every
 * combination of (status|any) x (tier|any) x (holder|any; any only without a holder), and its
 * parent's children of (status|any).
 */
export function expectedIndexKeys(keys: Keys, contextId: string, node: Record<string, string>): string[] {
  const k = keys.context(contextId);
  const status = node.status as AllocationStatus;
  const out: string[] = [];
  for (const s of [status, undefined]) {
    for (const tier of [Number(node.tier), undefined]) {
      for (const holder of node.holder ? [node.holder, undefined] : [undefined]) out.push(k.allocationIndex({ status: s, tier, holder }));
    }
    out.push(k.childIndex(node.parent ?? "", s));
  }
  return out;
}

/**
 * Every way the read indexes disagree with the allocation hashes, or []: each allocation is in
 * exactly its expected index keys (score = its number) and in no other, the set of indexes lists
 * exactly the index keys that exist, and the ended set holds exactly the ended allocations, each
 * scored by its endedAt.
 */
function indexViolations(prefix: string, contextId: string, snapshot: LedgerSnapshot): string[] {
  const keys = new Keys(prefix);
  const problems: string[] = [];
  const expected = new Map<string, Set<string>>();
  for (const [n, node] of snapshot.nodes) {
    if (n === "") continue;
    for (const key of expectedIndexKeys(keys, contextId, node)) {
      const members = expected.get(key) ?? new Set<string>();
      members.add(n);
      expected.set(key, members);
    }
    const ended = snapshot.ended[n];
    if (node.status === "ACTIVE" && ended !== undefined) problems.push(`#${n} is ACTIVE but in the ended set`);
    if (node.status !== "ACTIVE" && ended !== node.endedAt) problems.push(`#${n} is ${node.status} at ${node.endedAt} but scored ${ended} in the ended set`);
  }
  for (const n of Object.keys(snapshot.ended)) if (!snapshot.nodes.has(n)) problems.push(`#${n} is in the ended set but has no hash`);
  for (const [key, members] of expected) {
    const actual = snapshot.indexes.get(key);
    if (!actual) {
      problems.push(`${key} is not listed in the set of indexes (or is empty)`);
      continue;
    }
    for (const n of members) if (actual[n] !== n) problems.push(`${key} lacks #${n} (score ${actual[n]})`);
  }
  for (const [key, actual] of snapshot.indexes) {
    const members = expected.get(key);
    if (Object.keys(actual).length === 0) problems.push(`${key} is listed in the set of indexes but does not exist`);
    for (const n of Object.keys(actual)) if (!members?.has(n)) problems.push(`${key} holds #${n}, which does not belong there`);
  }
  return problems;
}
