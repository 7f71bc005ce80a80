import type { Redis } from "ioredis";
import type { PatchOperation } from "../json/patch.js";
import type { Keys } from "../redis/keys.js";
import { allocationFromJson, lockFromJson, type Allocation, type Lock } from "../store/ledger.js";

/** One entry of a context's change feed. */
export interface ChangeEntry {
  readonly contextId: string;
  readonly seq: number;
  readonly version: number;
  readonly kind: string;
  readonly paths: readonly string[];
  readonly patch: readonly PatchOperation[];
  readonly actor: string;
  readonly reason: string | null;
  readonly at: string;
  /** The allocation after the change, for ledger changes. */
  readonly allocation: Allocation | null;
  /** The lock after the change, for lock changes. */
  readonly lock: Lock | null;
}

/** A run of feed entries, and whether entries right after the asked-for seq were trimmed away. */
export interface FeedRead {
  readonly entries: ChangeEntry[];
  /** The oldest retained seq when the entries right after `afterSeq` are no longer retained, else null. */
  readonly trimmedTo: number | null;
}

/** Where a context's feed stands: its last seq and the document version after it (0, 0: no feed). */
export interface FeedHead {
  readonly seq: number;
  readonly version: number;
}

/** Kinds whose entry changes the document version: the version before them is one less. */
const VERSIONING_KINDS = new Set(["CREATED", "UPDATED", "ROLLED_BACK"]);

/** The document version just before `entry` was appended (0 before a CREATED). */
export function versionBefore(entry: ChangeEntry): number {
  return VERSIONING_KINDS.has(entry.kind) ? entry.version - 1 : entry.version;
}

/** Reads of the change feeds (Redis streams, entry id `<seq>-0`); never writes. */
export class FeedReader {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Entries of `contextId` after `afterSeq` (null: from the oldest retained), oldest first, at most `limit`. */
  async read(contextId: string, afterSeq: number | null, limit: number): Promise<FeedRead> {
    const feed = this.keys.context(contextId).feed;
    const start = afterSeq == null ? "-" : `(${afterSeq}-0`;
    const entries = (await this.redis.xrange(feed, start, "+", "COUNT", limit)).map(([entryId, fields]) =>
      toChangeEntry(contextId, entryId, fields),
    );
    let trimmedTo: number | null = null;
    if (afterSeq != null && afterSeq > 0 && entries[0]?.seq !== afterSeq + 1) {
      const [oldest] = await this.redis.xrange(feed, "-", "+", "COUNT", 1);
      const oldestSeq = oldest ? seqOf(oldest[0]) : null;
      if (oldestSeq !== null && oldestSeq > afterSeq + 1) trimmedTo = oldestSeq;
    }
    return { entries, trimmedTo };
  }

  /** The last entry's seq and version, read in one step so the two agree. */
  async head(contextId: string): Promise<FeedHead> {
    const [last] = await this.redis.xrevrange(this.keys.context(contextId).feed, "+", "-", "COUNT", 1);
    if (!last) return { seq: 0, version: 0 };
    // Only the version field: the entry's patch may be large and is not needed here.
    const [entryId, fields] = last;
    let version = 0;
    for (let i = 0; i < fields.length; i += 2) if (fields[i] === "version") version = Number(fields[i + 1]);
    return { seq: seqOf(entryId), version };
  }

  /** The last seq of each context (0 for one that never had a change). */
  async seqs(contextIds: readonly string[]): Promise<number[]> {
    return Promise.all(contextIds.map(async (id) => Number((await this.redis.get(this.keys.context(id).seq)) ?? 0)));
  }

  /**
   * Every id that has (or is about to get) a feed and starts with `prefix`, in id order. Create
   * indexes an id before its first change is committed, and nothing removes it, so an id missing
   * here had no change committed before this call.
   */
  async idsWithPrefix(prefix: string): Promise<string[]> {
    const end = prefix ? `[${prefix}\xff` : "+";
    const ids: string[] = [];
    let start = prefix ? `[${prefix}` : "-";
    for (;;) {
      const page = await this.redis.zrangebylex(this.keys.feedIndex, start, end, "LIMIT", 0, 1000);
      ids.push(...page);
      if (page.length < 1000) return ids;
      start = `(${page[page.length - 1]}`;
    }
  }
}

function seqOf(entryId: string): number {
  return Number(entryId.slice(0, entryId.indexOf("-")));
}

function toChangeEntry(contextId: string, entryId: string, fields: string[]): ChangeEntry {
  const f: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  return {
    contextId,
    seq: seqOf(entryId),
    version: Number(f.version),
    kind: f.kind!,
    paths: JSON.parse(f.paths ?? "[]") as string[],
    patch: JSON.parse(f.patch ?? "[]") as PatchOperation[],
    actor: f.actor ?? "",
    reason: f.reason ? f.reason : null,
    at: f.at!,
    allocation: f.allocation ? allocationFromJson(f.allocation) : null,
    lock: f.lock ? lockFromJson(f.lock) : null,
  };
}
