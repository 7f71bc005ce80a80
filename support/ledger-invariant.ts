import type { Redis } from "ioredis";

/**
 * Reads a swarm's whole ledger straight from Redis (not through the server's code) and returns
 * every broken rule, or [] when it is sound:
 * - per kind at every node: consumed + reserved <= granted (the budget's granted = limits;
 *   skipped for the budget when `limitsLowered`, since lowering limits live is allowed);
 * - reserved = sum of granted of the node's active children;
 * - an active allocation's parent is active (or the budget); amounts are never negative;
 * - an allocation's d:<kind> (what ending its active subtree will still charge to it) is the sum of
 *   its active children's consumed + d:, plus, while it is released in steps, its final usage
 *   (so at least that sum); 0 once it has ended.
 */
export async function ledgerViolations(redis: Redis, prefix: string, contextId: string, limitsLowered = false): Promise<string[]> {
  const { nodes, limits } = await ledgerSnapshot(redis, prefix, contextId);
  const problems: string[] = [];
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

/** Reads the budget, limits and every allocation hash in one atomic step (a read-only script), so the snapshot is consistent even while writers race. */
const SNAPSHOT = `
local base = ARGV[1]
local out = { redis.call('HGETALL', base .. ':limits'), redis.call('HGETALL', base .. ':root') }
for _, n in ipairs(redis.call('ZRANGE', base .. ':allocs', 0, -1)) do
  out[#out + 1] = n
  out[#out + 1] = redis.call('HGETALL', base .. ':alloc:' .. n)
end
return out`;

export interface LedgerSnapshot {
  /** "" is the budget; others are allocation numbers. */
  readonly nodes: Map<string, Record<string, string>>;
  readonly limits: Record<string, string>;
}

export async function ledgerSnapshot(redis: Redis, prefix: string, contextId: string): Promise<LedgerSnapshot> {
  const reply = (await redis.eval(SNAPSHOT, 0, `${prefix}:{ctx:${contextId}}`)) as (string | string[])[];
  const nodes = new Map<string, Record<string, string>>([["", record(reply[1] as string[])]]);
  for (let i = 2; i < reply.length; i += 2) nodes.set(reply[i] as string, record(reply[i + 1] as string[]));
  return { nodes, limits: record(reply[0] as string[]) };
}
