import type { RedisClient } from "../redis/clients.js";
import type { PatchOperation } from "../json/patch.js";
import type { Keys } from "../redis/keys.js";
import { scriptsOf } from "../redis/scripts.js";
import { allocationFromJson } from "../model/allocation.js";
import type { ChangeEntry } from "../model/change.js";
import { lockFromJson } from "../model/lock.js";

/** A change as read from its context's stream, with its size there. */
export interface FeedEntry extends ChangeEntry {
  /** The lengths of its stream fields and values, summed: about its bytes in Redis (cheap to get). */
  readonly bytes: number;
}

/** A run of feed entries, and whether entries right after the asked-for seq were trimmed away. */
export interface FeedRead {
  readonly entries: FeedEntry[];
  /** The oldest retained seq when the entries right after `afterSeq` are no longer retained, else null. */
  readonly trimmedTo: number | null;
}

/** Where a context's feed stands: its last seq and the document's version now (0 while it does not exist). */
export interface FeedHead {
  readonly seq: number;
  readonly version: number;
}

/**
 * A feed entry that cannot be parsed (written by something other than this server's scripts, or
 * by a version of them this server does not know): the entries after it can still be read.
 */
export class UnreadableEntryError extends Error {
  constructor(
    readonly contextId: string,
    readonly seq: number,
    cause: unknown,
  ) {
    super(`feed entry ${seq} of context ${contextId} cannot be read: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "UnreadableEntryError";
  }
}

/**
 * Largest feed entry, in bytes as FeedEntry.bytes counts them, that the wake-up announcing it
 * carries (append_change in redis/lua/_1-common.lua, which holds the same number); a larger one
 * is announced by its context and seq alone, and read from the stream.
 */
export const WAKE_UP_ENTRY_BYTES = 8192;

/**
 * The entry a wake-up carries (`fieldsJson`: the JSON array of its stream fields and values, as
 * append_change publishes it), as `read` would return it. Throws UnreadableEntryError when it is
 * not what change scripts write: the caller then reads the stream, which holds the same entry.
 */
export function entryFromWakeUp(contextId: string, seq: number, fieldsJson: string): FeedEntry {
  let fields: unknown;
  try {
    fields = JSON.parse(fieldsJson);
  } catch (err) {
    throw new UnreadableEntryError(contextId, seq, err);
  }
  if (!Array.isArray(fields) || fields.length % 2 !== 0 || !fields.every((f) => typeof f === "string")) {
    throw new UnreadableEntryError(contextId, seq, new Error("a wake-up's entry is not a list of field, value strings"));
  }
  return toFeedEntry(contextId, `${seq}-0`, fields as string[]);
}

/** Most entries read-feed-1.lua takes from the stream per XRANGE, however many it may return. */
const SCRIPT_CHUNK = 100;

/**
 * About the largest a feed entry can be under these limits: a change's patch and its paths are
 * each at most a document or a request. A read asks Redis for no more entries at once than the
 * bytes it may still take would hold at this size, plus one, so that it holds at most one entry
 * more than it returns however large the entries are.
 */
export function largestEntryBytes(limits: { readonly maxDocumentBytes: number; readonly maxRequestBytes: number }): number {
  return 2 * Math.max(limits.maxDocumentBytes, limits.maxRequestBytes) + 65_536;
}

/** Kinds whose entry changes the document version: the version before them is one less. */
const VERSIONING_KINDS = new Set(["CREATED", "UPDATED", "ROLLED_BACK"]);

/** The document version just before `entry` was appended (0 before a CREATED). */
export function versionBefore(entry: ChangeEntry): number {
  return VERSIONING_KINDS.has(entry.kind) ? entry.version - 1 : entry.version;
}

/** Reads of the change feeds (Redis streams, entry id `<seq>-0`); never writes. */
export class FeedReader {
  /** `largestEntry`: see largestEntryBytes. */
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly largestEntry: number,
  ) {}

  /**
   * Entries of `contextId` after `afterSeq` (null: from the oldest retained), oldest first: at
   * most `limit`, and past the first only while their bytes (FeedEntry.bytes) add up to at most
   * `maxBytes` (default: no bound). Throws UnreadableEntryError for an entry among them that
   * cannot be parsed.
   */
  async read(contextId: string, afterSeq: number | null, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<FeedRead> {
    const feed = this.keys.context(contextId).feed;
    const start = afterSeq == null ? "-" : `(${afterSeq}-0`;
    const raw = await scriptsOf(this.redis).readFeed(feed, start, limit, maxBytes, SCRIPT_CHUNK, this.largestEntry, "");
    const entries = raw.map(([entryId, fields]) => toFeedEntry(contextId, entryId, fields));
    let trimmedTo: number | null = null;
    if (afterSeq != null && afterSeq > 0 && entries[0]?.seq !== afterSeq + 1) {
      const [oldest] = await this.redis.xrange(feed, "-", "+", "COUNT", 1);
      const oldestSeq = oldest ? seqOf(oldest[0]) : null;
      if (oldestSeq !== null && oldestSeq > afterSeq + 1) trimmedTo = oldestSeq;
    }
    return { entries, trimmedTo };
  }

  /**
   * Entries of `contextId` before `beforeSeq` (null: from the newest), newest first, bounded as
   * `read`. Nothing tells of trimmed entries: a backward read ends where retention ends.
   */
  async readBack(contextId: string, beforeSeq: number | null, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<FeedEntry[]> {
    const feed = this.keys.context(contextId).feed;
    const start = beforeSeq == null ? "+" : `(${beforeSeq}-0`;
    const raw = await scriptsOf(this.redis).readFeed(feed, start, limit, maxBytes, SCRIPT_CHUNK, this.largestEntry, "rev");
    return raw.map(([entryId, fields]) => toFeedEntry(contextId, entryId, fields));
  }

  /**
   * The last seq and the document's version, read in one step so the two agree; from the seq
   * counter and the document, not the last entry, which may be large or unreadable.
   */
  async head(contextId: string): Promise<FeedHead> {
    const ctx = this.keys.context(contextId);
    const replies = (await this.redis.multi().get(ctx.seq).hget(ctx.meta, "version").exec())!;
    for (const [err] of replies) if (err) throw err;
    const [[, seq], [, version]] = replies as [[null, string | null], [null, string | null]];
    return { seq: Number(seq ?? 0), version: Number(version ?? 0) };
  }

  /**
   * The seqs of the oldest and newest retained entries, without reading any entry: seqs are
   * gap-free and the stream is trimmed from its oldest end, so the oldest is the last seq less
   * the stream's length, plus one. Both 0 while there are none.
   */
  async retained(contextId: string): Promise<{ oldest: number; newest: number }> {
    const ctx = this.keys.context(contextId);
    const replies = (await this.redis.multi().get(ctx.seq).xlen(ctx.feed).exec())!;
    for (const [err] of replies) if (err) throw err;
    const [[, seq], [, length]] = replies as [[null, string | null], [null, number]];
    const newest = Number(seq ?? 0);
    return length === 0 ? { oldest: 0, newest: 0 } : { oldest: newest - length + 1, newest };
  }

  /** The last seq of each context (0 for one that never had a change). */
  async seqs(contextIds: readonly string[]): Promise<number[]> {
    return Promise.all(contextIds.map(async (id) => Number((await this.redis.get(this.keys.context(id).seq)) ?? 0)));
  }

  /**
   * Every id that has (or is about to get) a feed and starts with `prefix`, in id order. Create
   * indexes an id before its first change is committed, and only the prune of a deleted context's
   * feed removes it (store/deletions.ts), so an id missing here has no change committed before
   * this call that is still kept.
   */
  async idsWithPrefix(prefix: string): Promise<string[]> {
    const end = prefix ? `[${prefix}\xff` : "+";
    // Every index shard at once; ids are ASCII (CONTEXT_ID), so sort() is Redis's byte order.
    const shards = await Promise.all(
      this.keys.indexes.map(async (ix) => {
        const ids: string[] = [];
        let start = prefix ? `[${prefix}` : "-";
        for (;;) {
          const page = await this.redis.zrangebylex(ix.feeds, start, end, "LIMIT", 0, 1000);
          ids.push(...page);
          if (page.length < 1000) return ids;
          start = `(${page[page.length - 1]}`;
        }
      }),
    );
    return shards.flat().sort();
  }
}

function seqOf(entryId: string): number {
  return Number(entryId.slice(0, entryId.indexOf("-")));
}

/** Parses one stream entry; throws UnreadableEntryError when it is not what change scripts write. */
function toFeedEntry(contextId: string, entryId: string, fields: string[]): FeedEntry {
  const f = new Map<string, string>();
  let bytes = 0;
  for (let i = 0; i < fields.length; i += 2) {
    f.set(fields[i]!, fields[i + 1]!);
    bytes += fields[i]!.length + fields[i + 1]!.length;
  }
  const seq = seqOf(entryId);
  try {
    const version = Number(f.get("version"));
    const kind = f.get("kind");
    const at = f.get("at");
    if (!Number.isSafeInteger(version) || version < 0 || !kind || !at) throw new Error("version, kind or at is missing or malformed");
    const paths = JSON.parse(f.get("paths") ?? "[]") as unknown;
    const patch = JSON.parse(f.get("patch") ?? "[]") as unknown;
    if (!Array.isArray(paths) || !paths.every((p) => typeof p === "string") || !Array.isArray(patch)) {
      throw new Error("paths or patch is not a list");
    }
    const allocation = f.get("allocation");
    const lock = f.get("lock");
    return {
      contextId,
      seq,
      version,
      kind,
      paths: paths as string[],
      patch: patch as PatchOperation[],
      actor: f.get("actor") ?? "",
      reason: f.get("reason") || null,
      at,
      allocation: allocation ? allocationFromJson(allocation) : null,
      lock: lock ? lockFromJson(lock) : null,
      bytes,
    };
  } catch (err) {
    throw new UnreadableEntryError(contextId, seq, err);
  }
}
