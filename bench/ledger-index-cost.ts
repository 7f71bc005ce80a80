// `npx tsx bench/ledger-index-cost.ts`: what the read indexes (and the ended set) add to the
// allocate and release scripts: Redis time per call (INFO commandstats) of the scripts as they are
// and as they were before the indexes (git show of the commit given, default b7ef9bb), alternated in
// one run on one redis-server.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { startRedisServer } from "../support/redis-server.js";

const BEFORE = process.env.BEFORE_COMMIT ?? "b7ef9bb";
const PAIRS = Number(process.env.PAIRS ?? 5_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const LUA = new URL("../src/redis/lua/", import.meta.url);

const now = (file: string) => readFileSync(new URL(file, LUA), "utf8");
const then = (file: string) => execFileSync("git", ["show", `${BEFORE}:src/redis/lua/${file}`], { encoding: "utf8" });
const script = (read: (file: string) => string, file: string) => `${read("_1-common.lua")}\n${read("_2-ledger.lua")}\n${read(file)}`;

const server = await startRedisServer();
const redis = new Redis(server.url);
type Call = (...args: (string | number)[]) => Promise<string>;
const commands = redis as unknown as Record<string, Call>;
for (const [name, read] of [["Now", now], ["Then", then]] as const) {
  redis.defineCommand(`allocate${name}`, { lua: script(read, "allocate-9.lua"), numberOfKeys: 9 });
  redis.defineCommand(`release${name}`, { lua: script(read, "release-9.lua"), numberOfKeys: 9 });
}

let ctx = 0;
/** Redis microseconds per call of allocate and of release over PAIRS pairs on a fresh context. */
async function measure(version: "Now" | "Then"): Promise<{ allocate: number; release: number }> {
  const base = `b:{ctx:c${++ctx}}`;
  await redis.hset(`${base}:meta`, "version", 1);
  await redis.hset(`${base}:limits`, "credits", 1e12);
  const keys = (op: string) => [`${base}:meta`, `${base}:seq`, `${base}:feed`, `${base}:op:${op}`, `${base}:limits`, `${base}:policy`, `${base}:root`, `${base}:leases`, `${base}:allocs`];
  const argv = ["f", `c${ctx}`, base, "bench", "", 10_000, 60, "b:changes"];
  const usec = async () => Number(/cmdstat_evalsha:calls=\d+,usec=(\d+)/.exec(await redis.info("commandstats"))?.[1] ?? 0);
  const batch = async (run: (i: number) => Promise<string>) => {
    await redis.config("RESETSTAT");
    for (let i = 0; i < PAIRS; i += 100) await Promise.all(Array.from({ length: Math.min(100, PAIRS - i) }, (_, j) => run(i + j)));
    return (await usec()) / PAIRS;
  };
  // Warm: the script is loaded (EVALSHA from here on).
  await commands[`allocate${version}`]!(...keys("warm"), ...argv, "", "credits 1", "", "EXACT", "", "holder", "");
  const allocate = await batch((i) => commands[`allocate${version}`]!(...keys(`a${i}`), ...argv, "", "credits 1", "", "EXACT", "", i % 2 ? "holder" : "", ""));
  const release = await batch((i) => commands[`release${version}`]!(...keys(`r${i}`), ...argv, String(i + 2), ""));
  return { allocate, release };
}

const rows: { round: number; now: { allocate: number; release: number }; then: { allocate: number; release: number } }[] = [];
for (let round = 1; round <= ROUNDS; round++) rows.push({ round, then: await measure("Then"), now: await measure("Now") });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const med = (pick: (r: (typeof rows)[number]) => number) => median(rows.map(pick));
const fmt = (x: number) => x.toFixed(1);
console.log(`Redis µs per call, median of ${ROUNDS} rounds of ${PAIRS} (before = ${BEFORE}):`);
for (const op of ["allocate", "release"] as const) {
  const before = med((r) => r.then[op]);
  const after = med((r) => r.now[op]);
  console.log(`${op.padEnd(8)} before ${fmt(before)}  after ${fmt(after)}  ratio ${(after / before).toFixed(2)}`);
}
redis.disconnect();
await server.stop();
