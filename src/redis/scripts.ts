import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import type { Redis } from "ioredis";

const LUA_DIR = new URL("./lua/", import.meta.url);

interface Script {
  readonly source: string;
  readonly sha: string;
  readonly numKeys: number;
}

/**
 * Scripts by name: `lua/update-context-7.lua` is `update-context`, taking 7 keys. Files whose
 * names start with "_" are shared helpers, prepended to every script in name order.
 */
function loadAll(): ReadonlyMap<string, Script> {
  const files = readdirSync(LUA_DIR).sort();
  const prelude = files
    .filter((file) => file.startsWith("_"))
    .map((file) => readFileSync(new URL(file, LUA_DIR), "utf8"))
    .join("\n");
  const scripts = new Map<string, Script>();
  for (const file of files) {
    const match = /^([a-z-]+)-(\d+)\.lua$/.exec(file);
    if (!match) continue;
    const source = `${prelude}\n${readFileSync(new URL(file, LUA_DIR), "utf8")}`;
    scripts.set(match[1]!, {
      source,
      sha: createHash("sha1").update(source).digest("hex"),
      numKeys: Number(match[2]),
    });
  }
  return scripts;
}

const SCRIPTS = loadAll();

/**
 * Runs the named script with EVALSHA, falling back to EVAL (which also caches it) when Redis
 * does not know the script yet. Throws when the name is unknown or the key count is wrong.
 */
export async function runScript(
  redis: Redis,
  name: string,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  const script = SCRIPTS.get(name);
  if (!script) throw new Error(`no Lua script named ${name}`);
  if (keys.length !== script.numKeys) {
    throw new Error(`script ${name} takes ${script.numKeys} keys, got ${keys.length}`);
  }
  try {
    return await redis.evalsha(script.sha, script.numKeys, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
    return redis.eval(script.source, script.numKeys, ...keys, ...args);
  }
}
