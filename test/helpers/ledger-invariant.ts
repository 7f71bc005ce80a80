import type { Redis } from "ioredis";

/**
 * Reads a swarm's whole ledger straight from Redis (not through the server's code) and returns
 * every broken rule, or [] when it is sound:
 * - per kind at every node: consumed + reserved <= granted (the budget's granted = limits;
 *   skipped for the budget when `limitsLowered`, since lowering limits live is allowed);
 * - reserved = sum of granted of the node's active children;
 * - an active allocation's parent is active (or the budget); amounts are never negative.
 */
export async function ledgerViolations(redis: Redis, prefix: string, contextId: string, limitsLowered = false): Promise<string[]> {
  const base = `${prefix}:{ctx:${contextId}}`;
  const numbers = await redis.zrange(`${base}:allocs`, 0, -1);
  const nodes = new Map<string, Record<string, string>>();
  nodes.set("", await redis.hgetall(`${base}:root`));
  for (const n of numbers) nodes.set(n, await redis.hgetall(`${base}:alloc:${n}`));
  const limits = await redis.hgetall(`${base}:limits`);
  const problems: string[] = [];
  const kindsOf = (node: Record<string, string>) =>
    new Set(Object.keys(node).filter((f) => /^[gcrq]:/.test(f)).map((f) => f.slice(2)));
  for (const [n, node] of nodes) {
    const name = n === "" ? "budget" : `#${n}`;
    const kinds = kindsOf(node);
    if (n === "") for (const kind of Object.keys(limits)) kinds.add(kind);
    const activeChildren = [...nodes].filter(([, child]) => child.status === "ACTIVE" && (child.parent ?? "") === n && child !== node);
    for (const kind of kinds) {
      const granted = Number(n === "" ? (limits[kind] ?? 0) : (node[`g:${kind}`] ?? 0));
      const consumed = Number(node[`c:${kind}`] ?? 0);
      const reserved = Number(node[`r:${kind}`] ?? 0);
      const childSum = activeChildren.reduce((sum, [, child]) => sum + Number(child[`g:${kind}`] ?? 0), 0);
      if (consumed < 0 || reserved < 0) problems.push(`${name} ${kind}: negative consumed ${consumed} or reserved ${reserved}`);
      if (reserved !== childSum) problems.push(`${name} ${kind}: reserved ${reserved} but active children hold ${childSum}`);
      if (consumed + reserved > granted && !(n === "" && limitsLowered)) {
        problems.push(`${name} ${kind}: consumed ${consumed} + reserved ${reserved} > granted ${granted}`);
      }
    }
    if (n !== "" && node.status === "ACTIVE" && node.parent && nodes.get(node.parent)?.status !== "ACTIVE") {
      problems.push(`${name} is active under ended #${node.parent}`);
    }
  }
  return problems;
}
