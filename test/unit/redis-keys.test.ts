// Proves from the source that src/redis/keys.ts alone spells Redis key names in TypeScript, and that every Lua script declares the keys it takes (a header naming as many KEYS as its file name says, none used beyond them) and builds others only from a key base its header documents.
import { readdirSync, readFileSync } from "node:fs";
import { expect, test } from "vitest";

const SRC = new URL("../../src/", import.meta.url);
const LUA = new URL("../../src/redis/lua/", import.meta.url);
const read = (url: URL) => readFileSync(url, "utf8");

const keysSource = read(new URL("redis/keys.ts", SRC));
const ledgerPrelude = read(new URL("_2-ledger.lua", LUA));

/**
 * Every name segment a key is made of: what keys.ts appends to an interpolation (`${base}:meta`)
 * and what the ledger's layout appends to the key base (`<base>:alloc:<n>`).
 */
const SEGMENTS = [
  ...new Set([...keysSource.matchAll(/\}:([A-Za-z]+)/g), ...ledgerPrelude.matchAll(/<base>:([A-Za-z]+)/g)].map((m) => m[1]!)),
];

/** A segment appended to an interpolation or opening a string literal, or the hash tag itself. */
const KEY_SPELLING = new RegExp(`(?:\\}|[\`'"]):(?:${SEGMENTS.join("|")})\\b|\\{ctx:`);

test("the segments come from both layouts", () => {
  expect(SEGMENTS).toEqual(expect.arrayContaining(["meta", "feed", "op", "rate", "changes", "alloc", "lock", "root", "allocs", "locks"]));
});

test("no file under src/ but redis/keys.ts spells a key name", () => {
  const files = readdirSync(SRC, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts") && f !== "redis/keys.ts");
  const found = files.flatMap((file) =>
    read(new URL(file, SRC))
      .split("\n")
      // Comments may name keys; only code builds them.
      .flatMap((line, i) => (!/^\s*(\*|\/\/|\/\*)/.test(line) && KEY_SPELLING.test(line) ? [`src/${file}:${i + 1}: ${line.trim()}`] : [])),
  );
  expect(found).toEqual([]);
});

const scripts = readdirSync(LUA)
  .filter((file) => !file.startsWith("_"))
  .map((file) => {
    const [, name, count] = /^([a-z-]+)-(\d+)\.lua$/.exec(file) ?? [];
    const [shebang, ...rest] = read(new URL(file, LUA)).split("\n");
    const source = rest.join("\n");
    const header = source.slice(0, source.search(/^[^-]/m));
    return { file, name, numKeys: Number(count), shebang, source, header };
  });

test.each(scripts)("$file: its header names its KEYS, and it uses no other", ({ name, numKeys, source, header }) => {
  expect(name, "file name <name>-<number of keys>.lua").toBeDefined();
  const keysLine = /^-- KEYS\b(.*)$/m.exec(header)?.[1];
  expect(keysLine, "a header line `-- KEYS ...`").toBeDefined();
  const named = [...keysLine!.split("ARGV")[0]!.matchAll(/\d+/g)].map(Number);
  expect(Math.max(...named), "the last key the header names").toBe(numKeys);
  const used = [...source.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1]));
  expect(Math.max(0, ...used)).toBeLessThanOrEqual(numKeys);
});

// With a shebang Redis refuses a script that touches keys of two slots (Redis Cluster's rule,
// enforced as slots move); `no-writes` marks a read, which Redis then refuses to let write.
test.each(scripts)("$file: opens with a shebang, flagged no-writes exactly when it writes nothing", ({ shebang, source }) => {
  const writes = /redis\.call\('(SET|HSET|HDEL|DEL|UNLINK|XADD|XTRIM|ZADD|ZREM|ZPOPMIN|ZREMRANGEBYSCORE|INCR|INCRBY|HINCRBY|EXPIRE|PEXPIRE|PEXPIREAT|SADD|SREM|SPOP|PUBLISH|HSETNX|SETNX|RENAME)'/i;
  const usesHelpers = /ledger_begin|append_change|record_reply|replayed_reply|store_settings/.test(source);
  expect(shebang).toBe(writes.test(source) || usesHelpers ? "#!lua" : "#!lua flags=no-writes");
});

test.each(scripts)("$file: builds keys only from a key base its header documents", ({ source, header }) => {
  expect(source, "a key base recovered by cutting a declared key").not.toMatch(/string\.sub\(\s*KEYS/);
  const documented = /see _2-ledger\.lua/.test(header) ? ledgerPrelude : header;
  if (/\.\. ':/.test(source)) expect(documented).toMatch(/key base/);
});

test("the ledger prelude checks the key base before it reads or writes", () => {
  expect(ledgerPrelude).toMatch(/local function ledger_begin\(\)\n\s*check_key_base\(ARGV\[3\]\)\n/);
});
