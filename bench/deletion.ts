// deleteContext of a swarm with many allocations: the longest single Redis command it runs (SLOWLOG), in steps against the one script it replaced (bench/delete-context-one-script.lua), measured in the same run on swarms built alike.
import { readdirSync, readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { loadConfig } from "../src/config.js";
import { connectRedis } from "../src/redis/clients.js";
import { Keys } from "../src/redis/keys.js";
import { ContextStore } from "../src/store/contexts.js";
import { LedgerStore } from "../src/store/ledger.js";

/** Allocate calls in flight at once while a swarm is built. */
const IN_FLIGHT = 2_000;

export interface DeletionResult {
  readonly allocations: number;
  /** The longest single command (a script counts as one), in ms, per way of deleting. */
  readonly oneScriptMs: number;
  readonly stepsMs: number;
  /** The longest command in steps, its first words. */
  readonly stepsLongest: string;
  /** Scripts deleteContext in steps ran, and how long it took end to end, in ms. */
  readonly stepScripts: number;
  readonly stepsTotalMs: number;
  readonly oneScriptTotalMs: number;
}

/** The prelude (lua/_*.lua) and the baseline script, as scripts.ts assembles a script. */
function oneScript(): string {
  const dir = new URL("../src/redis/lua/", import.meta.url);
  const prelude = readdirSync(dir).filter((f) => f.startsWith("_")).sort().map((f) => readFileSync(new URL(f, dir), "utf8")).join("\n");
  return `${prelude}\n${readFileSync(new URL("./delete-context-one-script.lua", import.meta.url), "utf8")}`;
}

/** A swarm of `allocations` allocations (half of them children of the others), built through the store with many calls in flight. */
async function buildSwarm(contexts: ContextStore, ledger: LedgerStore, id: string, allocations: number): Promise<void> {
  await contexts.create(id, { resources: { limits: { credits: 1e12 } } }, { actor: "bench" });
  const parents: string[] = [];
  for (let done = 0; done < allocations / 2; done += IN_FLIGHT) {
    const batch = Math.min(IN_FLIGHT, allocations / 2 - done);
    const made = await Promise.all(Array.from({ length: batch }, () => ledger.allocate(id, { request: [{ kind: "credits", amount: 10 }], mode: "EXACT", leaseMs: 3_600_000 }, { actor: "bench" })));
    parents.push(...made.map((a) => a.id));
  }
  for (let done = 0; done < parents.length; done += IN_FLIGHT) {
    await Promise.all(parents.slice(done, done + IN_FLIGHT).map((parentId) => ledger.allocate(id, { parentId, request: [{ kind: "credits", amount: 1 }], mode: "EXACT" }, { actor: "bench" })));
  }
}

/** Runs `run` with every command logged, and returns the longest (ms) and how many there were. */
async function slowest(redis: Redis, run: () => Promise<unknown>): Promise<{ longestMs: number; scripts: number; totalMs: number; longest: string }> {
  await redis.config("SET", "slowlog-log-slower-than", "0");
  await redis.config("SET", "slowlog-max-len", "1000000");
  await redis.slowlog("RESET");
  const started = performance.now();
  await run();
  const totalMs = performance.now() - started;
  const log = (await redis.slowlog("GET", -1)) as [number, number, number, string[]][];
  await redis.config("SET", "slowlog-log-slower-than", "10000");
  // SLOWLOG lists the commands scripts call as well as the scripts (whose time includes theirs),
  // and this client's own CONFIG/SLOWLOG calls, left out (a RESET frees the previous log).
  const measured = log.filter((entry) => !/^(config|slowlog)$/i.test(entry[3][0] ?? ""));
  const top = measured.reduce((a, b) => (b[2] > a[2] ? b : a));
  const scripts = measured.filter((entry) => /^(evalsha|eval)$/i.test(entry[3][0] ?? "")).length;
  return { longestMs: top[2] / 1000, scripts, totalMs, longest: top[3].slice(0, 2).join(" ") };
}

/** Builds two swarms alike and deletes one with the baseline script, the other with ContextStore.delete. */
export async function deletionBench(redisUrl: string, allocations: number): Promise<DeletionResult> {
  const config = { ...loadConfig([], {}), leaseSweepMs: 0 };
  const redis = await connectRedis({ url: redisUrl }, "bench-deletion");
  const keys = new Keys("bench-deletion");
  const contexts = new ContextStore(redis, keys, config);
  const ledger = new LedgerStore(redis, keys, config);
  try {
    await buildSwarm(contexts, ledger, "one-script", allocations);
    await buildSwarm(contexts, ledger, "steps", allocations);
    redis.defineCommand("deleteOneScript", { numberOfKeys: 7, lua: oneScript() });
    const k = keys.context("one-script");
    const before = await slowest(redis, () =>
      (redis as unknown as Record<string, (...args: unknown[]) => Promise<string>>).deleteOneScript!(
        k.meta, k.seq, k.snapshots, k.feed, keys.op("one-script", "bench"), k.limits, k.policy,
        "", "", "bench", "", new Date().toISOString(), config.feedRetention, 60, keys.changesChannel, "one-script", keys.contextBase("one-script"),
      ),
    );
    const after = await slowest(redis, () => contexts.delete("steps", { actor: "bench" }));
    return {
      allocations,
      oneScriptMs: before.longestMs,
      stepsMs: after.longestMs,
      stepsLongest: after.longest,
      stepScripts: after.scripts,
      stepsTotalMs: after.totalMs,
      oneScriptTotalMs: before.totalMs,
    };
  } finally {
    redis.disconnect();
  }
}

export function printDeletion(r: DeletionResult): void {
  console.log(`\n## deleteContext of a swarm of ${r.allocations.toLocaleString("en")} allocations: the longest single Redis command (SLOWLOG)\n`);
  console.log("| way | longest command ms | scripts | deleteContext ms end to end | goal |");
  console.log("|---|---:|---:|---:|---|");
  console.log(`| one script (before) | ${r.oneScriptMs.toFixed(1)} | 1 | ${r.oneScriptTotalMs.toFixed(0)} | |`);
  console.log(`| in steps (now) | ${r.stepsMs.toFixed(2)} | ${r.stepScripts} | ${r.stepsTotalMs.toFixed(0)} | < 10 ms ${r.stepsMs < 10 ? "PASS" : "MISS"} |`);
  console.log(`longest command in steps: ${r.stepsLongest}`);
  console.log(`longest command in steps / one script: ${((r.stepsMs / r.oneScriptMs) * 100).toFixed(2)} %`);
}
