import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import type { Cluster, Redis } from "ioredis";
import { ConfirmedWrites, type WriteConfirmation } from "./confirmed-writes.js";

const LUA_DIR = new URL("./lua/", import.meta.url);

/** KEYS of the document scripts (create-, update- and delete-context), keys.ts context() and op record. */
export type DocumentKeys = [meta: string, seq: string, snapshots: string, feed: string, op: string, limits: string, policy: string];

/** KEYS of every ledger script (lua/_2-ledger.lua). */
export type LedgerKeys = [
  meta: string,
  seq: string,
  feed: string,
  op: string,
  limits: string,
  policy: string,
  root: string,
  leases: string,
  allocs: string,
];

/** ARGV 1-8 of every ledger script (lua/_2-ledger.lua); each script's own arguments follow. */
export type LedgerArgs = [
  fingerprint: string,
  contextId: string,
  keyBase: string,
  actor: string,
  reason: string,
  feedRetention: number,
  recordTtlSeconds: number,
  channel: string,
];

type Arg = string | number;

/** The ledger scripts' commands, which all take LedgerKeys and LedgerArgs and answer JSON. */
export type LedgerScript =
  | "allocate"
  | "reportUsage"
  | "release"
  | "renewAllocation"
  | "acquireLock"
  | "renewLock"
  | "releaseLock"
  | "expireDue";

type LedgerCommands = {
  [name in LedgerScript]: (...keysAndArgs: [...LedgerKeys, ...LedgerArgs, ...Arg[]]) => Promise<string>;
};

/**
 * Every script as a function: lua/<name>-<keys>.lua is <name> in camelCase, taking its KEYS then
 * its ARGV as its header names them.
 */
export interface ScriptCommands extends LedgerCommands {
  createContext(
    ...keysAndArgs: [
      ...DocumentKeys,
      fingerprint: string,
      order: string,
      actor: string,
      reason: string,
      now: string,
      feedRetention: number,
      recordTtlSeconds: number,
      channel: string,
      contextId: string,
      paths: string,
      patch: string,
      head: string,
      limits: string,
      policy: string,
      dryRun: "1" | "",
      keyBase: string,
      counterFloor: number,
      floorReadAtMs: number,
      floorMaxAgeMs: number,
      ...members: string[],
    ]
  ): Promise<string>;
  /** JSON: pending | raise | wait | done (see the script's header). */
  purgeStep(meta: string, tombstone: string, keyBase: string, retentionMs: number, mayPrune: "1" | "0", floorReached: number | ""): Promise<string>;
  /** The floor after raising it to at least `seq`. */
  raiseFloor(counterFloor: string, seq: number): Promise<number>;
  updateContext(
    ...keysAndArgs: [
      ...DocumentKeys,
      fingerprint: string,
      baseHead: string,
      expectedVersion: number | "",
      order: string,
      kind: string,
      paths: string,
      patch: string,
      actor: string,
      reason: string,
      now: string,
      historyLimit: number,
      feedRetention: number,
      recordTtlSeconds: number,
      channel: string,
      contextId: string,
      head: string,
      limits: string,
      policy: string,
      fenceLock: string,
      fenceToken: number | "",
      fenceLockKey: string,
      dryRun: "1" | "",
      ...members: string[],
    ]
  ): Promise<string>;
  deleteContext(
    ...keysAndArgs: [
      ...DocumentKeys,
      fingerprint: string,
      expectedVersion: number | "",
      actor: string,
      reason: string,
      now: string,
      feedRetention: number,
      recordTtlSeconds: number,
      channel: string,
      contextId: string,
      keyBase: string,
    ]
  ): Promise<string>;
  /** [version, seq, createdAt, updatedAt, updatedBy, document, recorded reply, head token]; null where Lua has false. */
  readContext(
    meta: string,
    seq: string,
    op: string,
    knownHead: string,
    fingerprint: string,
  ): Promise<[number | null, number, string, string, string, string | null, string | null, string]>;
  /** 1 moved, 0 not (see the script's header). */
  migrateDocument(meta: string, snapshots: string, head: string, order: string, oldest: number, memberArgs: number, ...membersThenSnapshots: string[]): Promise<number>;
  /** [current version, oldest retained version, the document of `version` (null: not retained)]; all null when there is no context. */
  readSnapshot(meta: string, snapshots: string, version: number): Promise<[number | null, number | null, string | null]>;
  readFeed(
    feed: string,
    start: string,
    limit: number,
    maxBytes: number,
    chunk: number,
    largestEntry: number,
    direction: "rev" | "",
  ): Promise<[id: string, fields: string[]][]>;
  /** Flat [id, score, id, score, ...], newest first, after the position (score '' = from the newest). */
  readByUpdate(byUpdate: string, afterScore: string, afterId: string, count: number): Promise<string[]>;
  /** The heartbeat's time, ms (Redis TIME). */
  heartbeat(
    instance: string,
    instanceIndex: string,
    id: string,
    version: string,
    startedAt: string,
    subscriptions: number,
    ttlMs: number,
    mode: "beat" | "stop",
  ): Promise<number>;
  /** The ids of the contexts due by `nowMs`, at most `most`, now claimed until `untilMs`. */
  takeDue(due: string, claimed: string, nowMs: number, untilMs: number, most: number): Promise<string[]>;
  /** Ends the claim on `contextId` and files it under `nextMs` ('' = nothing due) unless it is filed earlier. */
  settleDue(due: string, claimed: string, contextId: string, nextMs: number | ""): Promise<number>;
  /** [taken, ms until the window ends, window start, lease] (see the script's header). */
  rateLease(
    window: string,
    limit: number,
    windowMs: number,
    reportWindow: string,
    unreported: number,
    waiting: number,
    lease: number,
  ): Promise<[taken: number, ttlMs: number, start: string, lease: number]>;
  markEpochLost(epoch: string, judged: string, lost: string): Promise<string | null>;
  /** The recorded reply of an opId as a write replays it (JSON), or null without a record. */
  replay(op: string, fingerprint: string): Promise<string | null>;
}

/**
 * Write scripts that are not confirmed: bookkeeping that a failover may lose without harm, because
 * it is redone on its own soon after (a rate-limit window's count, a heartbeat, the lease sweeper's
 * claims on due contexts, which expire). Waiting on them would make reads, and every request's rate
 * check, wait for replicas too.
 */
const UNCONFIRMED = new Set(["rateLease", "heartbeat", "takeDue", "settleDue"]);

/** A script as loaded: its whole source, the SHA1 that EVALSHA names it by, its number of KEYS, and whether it may write. */
interface Script {
  readonly lua: string;
  readonly sha: string;
  readonly numberOfKeys: number;
  readonly writes: boolean;
}

/** `update-context` -> `updateContext`. */
function commandName(script: string): string {
  return script.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/**
 * Scripts by command name, as ioredis command definitions: `lua/update-context-7.lua` is
 * `updateContext`, taking 7 keys. Files whose names start with "_" are shared helpers, inserted
 * in name order after each script's first line, its shebang (`#!lua`, or `#!lua flags=no-writes`
 * for a read): with it, Redis refuses a script that touches keys of more than one slot, which is
 * what keeps the scripts correct on Redis Cluster while slots move. Throws when a script has none.
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
    const source = readFileSync(new URL(file, LUA_DIR), "utf8");
    const shebang = /^#!lua( flags=no-writes)?\n/.exec(source);
    if (!shebang) throw new Error(`lua/${file} must start with "#!lua" (or "#!lua flags=no-writes" for a read)`);
    const lua = `${shebang[0]}${prelude}\n${source.slice(shebang[0].length)}`;
    scripts.set(commandName(match[1]!), { lua, sha: createHash("sha1").update(lua).digest("hex"), numberOfKeys: Number(match[2]), writes: shebang[1] === undefined });
  }
  return scripts;
}

const SCRIPTS = loadAll();
const commandsOf = new WeakMap<Redis | Cluster, ScriptCommands>();

type Command = (...keysAndArgs: Arg[]) => Promise<unknown>;

/**
 * The scripts as typed functions running on `redis`, defined on it as commands (ioredis
 * defineCommand) on first use, which must come before its first command (connectRedis does so;
 * see the reason there): ioredis sends a script's source once per connection (EVAL), its
 * hash after (EVALSHA), and the source again when Redis answers NOSCRIPT (restarted or flushed).
 * On Redis Cluster, auto-pipelining groups a defined command by its first key's slot (raw EVALSHA
 * calls by their hash). Each function takes its script's KEYS, then its ARGV. With
 * `confirmation` (given on first use, by connectRedis), every write script but the bookkeeping
 * ones (UNCONFIRMED) waits for replicas before it resolves (see ConfirmedWrites: it rejects with
 * UNAVAILABLE when too few confirm); reads (`#!lua flags=no-writes`) never wait.
 */
export function scriptsOf(redis: Redis | Cluster, confirmation?: WriteConfirmation): ScriptCommands {
  let commands = commandsOf.get(redis);
  if (!commands) {
    const client = redis as unknown as Record<string, Command>;
    const made: Record<string, Command> = {};
    const confirmed = confirmation && new ConfirmedWrites(redis, confirmation);
    for (const [name, definition] of SCRIPTS) {
      redis.defineCommand(name, { lua: definition.lua, numberOfKeys: definition.numberOfKeys });
      made[name] =
        confirmation && definition.writes && !UNCONFIRMED.has(name)
          ? (...keysAndArgs) => confirmed!.run(definition, keysAndArgs)
          : (...keysAndArgs) => client[name]!(...keysAndArgs);
    }
    commands = made as unknown as ScriptCommands;
    commandsOf.set(redis, commands);
  }
  return commands;
}
