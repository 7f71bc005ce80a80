// The ledger page benchmark (run by bench/run.ts, alone with BENCH_ONLY=ledger-page): the latency of a
// console's page of active allocations with their children counts on a swarm with a short history
// and on one with a long history of ended allocations, which a page must not pay for.
import { loadConfig } from "../src/config.js";
import { connectRedis } from "../src/redis/clients.js";
import { Keys } from "../src/redis/keys.js";
import { LedgerStore } from "../src/store/ledger.js";

export const LEDGER_PAGE_QUERY =
  "query($id: ID!) { context(id: $id) { allocations(status: ACTIVE, first: 50) { edges { node { id children(first: 10) { totalCount } } } } } }";

async function post(url: string, query: string, variables?: unknown): Promise<any> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
  return res.json();
}

/**
 * Creates swarm `contextId` through the server at `appUrl`, then `ended` allocations allocated and
 * released straight through a LedgerStore (`inFlight` at a time, so the scripts are pipelined),
 * then the same active set every time: 40 allocations from the budget, the first 5 with 2
 * children each (50 active).
 */
export async function seedLedger(appUrl: string, redisUrl: string, keyPrefix: string, contextId: string, ended: number, inFlight = 500): Promise<void> {
  const created = await post(appUrl, "mutation($id: ID!, $d: JSON!) { createContext(id: $id, document: $d) { version } }", {
    id: contextId,
    d: { resources: { limits: { credits: 1e12 } } },
  });
  if (created.errors) throw new Error(JSON.stringify(created.errors));
  const redis = await connectRedis({ url: redisUrl }, "bench-seed");
  try {
    const ledger = new LedgerStore(redis, new Keys(keyPrefix), loadConfig([], {}));
    const actor = { actor: "bench" };
    const credits = (amount: number) => [{ kind: "credits", amount }];
    for (let done = 0; done < ended; done += inFlight) {
      await Promise.all(
        Array.from({ length: Math.min(inFlight, ended - done) }, async (_, i) => {
          const a = await ledger.allocate(contextId, { request: credits(1), mode: "EXACT", holder: `h${(done + i) % 7}` }, actor);
          await ledger.release(a.id, credits(1), actor);
        }),
      );
    }
    for (let i = 0; i < 40; i++) {
      const top = await ledger.allocate(contextId, { request: credits(100), mode: "EXACT", holder: "agent" }, actor);
      if (i < 5) for (let j = 0; j < 2; j++) await ledger.allocate(contextId, { parentId: top.id, request: credits(1), mode: "EXACT" }, actor);
    }
  } finally {
    redis.disconnect();
  }
}

/** p50 of `requests` sequential page queries on `contextId`, in ms; throws on a GraphQL error. */
export async function pageLatency(appUrl: string, contextId: string, requests: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < requests; i++) {
    const started = performance.now();
    const body = await post(appUrl, LEDGER_PAGE_QUERY, { id: contextId });
    times.push(performance.now() - started);
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    if (i === 0 && body.data.context.allocations.edges.length !== 50) throw new Error(`expected 50 active, got ${body.data.context.allocations.edges.length}`);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export interface LedgerPageRow {
  readonly ended: number;
  readonly p50s: number[];
  readonly seedSeconds: number;
}

/**
 * Seeds a swarm per size of history in `sizes` (ended allocations), then measures the page query on
 * each, alternating swarms in every round so that both see the machine in the same state.
 */
export async function ledgerPageScenario(appUrl: string, redisUrl: string, keyPrefix: string, sizes: readonly number[], rounds: number, requests: number): Promise<LedgerPageRow[]> {
  const rows: { ended: number; p50s: number[]; seedSeconds: number; id: string }[] = [];
  for (const ended of sizes) {
    const id = `bench-page-${ended}`;
    const started = performance.now();
    await seedLedger(appUrl, redisUrl, keyPrefix, id, ended);
    rows.push({ ended, p50s: [], seedSeconds: (performance.now() - started) / 1000, id });
  }
  for (const row of rows) await pageLatency(appUrl, row.id, 20); // warm-up
  for (let round = 0; round < rounds; round++) for (const row of rows) row.p50s.push(await pageLatency(appUrl, row.id, requests));
  return rows.map(({ ended, p50s, seedSeconds }) => ({ ended, p50s, seedSeconds }));
}
