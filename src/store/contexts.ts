import { randomUUID } from "node:crypto";
import type { RedisClient } from "../redis/clients.js";
import { AppError, checkAll, ErrorCode } from "../errors.js";
import { diffDocuments } from "../json/diff.js";
import { applyMergePatch } from "../json/merge.js";
import { applyPatch, type AppliedChange, type PatchOperation } from "../json/patch.js";
import type { JsonObject, JsonValue } from "../json/types.js";
import type { IndexKeys, Keys } from "../redis/keys.js";
import { scriptsOf, type DocumentKeys } from "../redis/scripts.js";
import type { StateCheck } from "../redis/state-guard.js";
import { Deletions } from "./deletions.js";
import { DocumentCache, type Head } from "./document-cache.js";
import { checkDepth, type DocumentLimits } from "./document-rules.js";
import { documentChange, membersOf, replacedFields, storedDocument, type DocumentChange, type StoredDocument } from "./document-parts.js";
import { CONTEXT_ID, checkLockName } from "../model/identifiers.js";
import { FeedReader, largestEntryBytes, type FeedEntry } from "./feed-reader.js";
import { ledgerSettings, touchesLedgerSettings } from "./ledger-settings.js";
import { ListCursors, type ListPosition } from "./list-cursors.js";
import type { IdRange } from "../security/auth.js";
import { checkOpId, fingerprintOf, opRecord, parseReply, parseWriteReply, settle, uniqueToken, type OpRecord, type ScriptReply } from "./script-replies.js";

export interface ContextStoreConfig extends DocumentLimits {
  readonly maxRequestBytes: number;
  readonly historyLimit: number;
  readonly feedRetention: number;
  readonly opIdTtlSeconds: number;
  readonly resendTtlSeconds: number;
  readonly deletedContextRetentionMs: number;
}

/** A fencing token of a lock: the write is refused (STALE_FENCE) unless it is the lock's current one. */
export interface Fence {
  readonly lock: string;
  readonly token: number;
}

/** Who asks for a change and why; `opId` makes it idempotent. A `fence` is honoured by patch and merge. */
export interface WriteOptions {
  readonly actor: string;
  readonly opId?: string | null;
  readonly expectedVersion?: number | null;
  readonly reason?: string | null;
  readonly fence?: Fence | null;
  /**
   * Check everything the write checks (in its script, against the state now) and answer what it
   * would answer, writing nothing: no version, no feed entry, no opId record, no index entry.
   */
  readonly dryRun?: boolean | null;
}

/** A context as of one version. `document` is absent when it was not loaded (lists, replays). */
export interface ContextView {
  readonly id: string;
  readonly version: number;
  readonly seq: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly updatedBy: string;
  readonly document?: JsonObject;
}

export interface DeletedContext {
  readonly id: string;
  readonly version: number;
  readonly seq: number;
}

/** Kinds of document changes (ledger and lock changes have their own kinds). */
export type ChangeKind = "CREATED" | "UPDATED" | "ROLLED_BACK" | "DELETED";

export interface ContextPage {
  readonly contexts: readonly ContextView[];
  /** Where each of `contexts` stands in the list's order (its index entry), for its cursor. */
  readonly positions: readonly ListPosition[];
  readonly hasNextPage: boolean;
  /** The position the next page starts after (not always one of `contexts`); null when nothing was found and nothing is left. */
  readonly resumeAfter: ListPosition | null;
}

/** ID: ascending ids. UPDATED_AT_DESC: newest updatedAt first, then descending ids. */
export type ContextOrder = "ID" | "UPDATED_AT_DESC";

/** What a contexts list selects. */
export interface ListQuery {
  readonly idPrefix: string | null;
  /** Only contexts whose updatedAt is later than this (ms since the epoch). */
  readonly updatedAfter: number | null;
  /** The ids the caller may see (its scope). */
  readonly visible: (id: string) => boolean;
}

interface WriteReply {
  readonly version: number;
  readonly seq: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly updatedBy: string;
}

/**
 * Index entries one `list` reads at most, found or not: a caller who may see few of the ids pages
 * past the others a bounded stretch per request.
 */
export const LIST_SCAN_LIMIT = 2000;

/** A read of a context's change feed, one way, with an optional filter. */
export interface HistoryRead {
  /** forward: oldest first, after `from` (null: from the oldest retained); backward: newest first, before `from` (null: from the newest). */
  readonly direction: "forward" | "backward";
  readonly from: number | null;
  /** Most entries returned. */
  readonly limit: number;
  /** Most entries read, matching or not (at least `limit`): what bounds a filter that matches little. */
  readonly scanLimit: number;
  /** Most bytes (FeedEntry.bytes) read, matching or not, past the first entry. */
  readonly maxBytes: number;
  /** Which entries to return; null: all. */
  readonly matches: ((entry: FeedEntry) => boolean) | null;
}

/** What a history read found, and where it stopped. */
export interface HistoryPage {
  readonly entries: FeedEntry[];
  /** The seq of the last entry read, matching or not (the read's `from` when it read none): where the next read continues. */
  readonly scannedTo: number | null;
  /** The read stopped at a bound (limit, scanLimit, maxBytes) rather than at the end of the retained feed. */
  readonly hasMore: boolean;
}

/** Most feed entries one script call of a history read takes (a few ms of Redis at most; bytes bound it too). */
export const HISTORY_SCAN_STEP = 1000;

/**
 * Index entries a totalCount reads at most when no Redis count answers it (both idPrefix and
 * updatedAfter, or a scope that is no union of prefixes): beyond it the count is null.
 */
export const COUNT_SCAN_LIMIT = 2000;

/** Rounds of one write's update-index reconciliation (see indexUpdate) before it leaves the rest to the writers still racing it. */
const INDEX_RECONCILE_ROUNDS = 10;

/** Ids read at a time from an index by migrateLegacyDocuments. */
const LEGACY_SCAN_PAGE = 500;

/** Attempts of one write whose base keeps moving under it before we call it a server fault. */
const MAX_WRITE_ATTEMPTS = 1000;

function notFound(id: string): AppError {
  return new AppError(ErrorCode.NOT_FOUND, `context ${id} does not exist`, { id });
}

function checkContextId(id: string): void {
  if (!CONTEXT_ID.test(id)) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, `context id must match ${CONTEXT_ID.source}`, { path: "id" });
  }
}

/**
 * The id ranges of `scope` within `prefix`, without overlaps: each range narrowed to the ids
 * starting with `prefix`, and a range dropped when another covers it.
 */
export function rangesWithin(scope: readonly IdRange[], prefix: string): IdRange[] {
  const narrowed: IdRange[] = [];
  for (const r of scope) {
    if (r.prefix.startsWith(prefix)) narrowed.push(r);
    else if (!r.exact && prefix.startsWith(r.prefix)) narrowed.push({ prefix, exact: false });
  }
  // Whether `a` holds every id of `b` and more.
  const covers = (a: IdRange, b: IdRange) => !a.exact && b.prefix.startsWith(a.prefix) && (b.exact || b.prefix !== a.prefix);
  const kept: IdRange[] = [];
  for (const r of narrowed) {
    if (kept.some((k) => covers(k, r) || (k.exact === r.exact && k.prefix === r.prefix))) continue;
    for (let i = kept.length - 1; i >= 0; i--) if (covers(r, kept[i]!)) kept.splice(i, 1);
    kept.push(r);
  }
  return kept;
}

/** What a read of one index shard found after a position, in the list's order, and whether the shard has nothing after it. */
interface IndexRead {
  readonly entries: ListPosition[];
  readonly exhausted: boolean;
}

/** The order by ID. Ids are ASCII (CONTEXT_ID), so JavaScript's string order is Redis's byte order. */
const idFirst = (a: ListPosition, b: ListPosition) => a.id < b.id;

/** The order by UPDATED_AT_DESC: the later index time first, then the greater id. */
const newerFirst = (a: ListPosition, b: ListPosition) => a.at! > b.at! || (a.at === b.at && a.id > b.id);

/**
 * Merges reads of every index shard after the same position (each in the order `before`) into
 * what one index would have given: the entries up to the earliest last entry of a shard that has
 * more (past it, that shard's next entries are unknown), in order; exhausted when every shard is.
 * Each id is in one shard, so nothing repeats.
 */
function mergeShards(reads: readonly IndexRead[], before: (a: ListPosition, b: ListPosition) => boolean): IndexRead {
  let bound: ListPosition | null = null;
  for (const read of reads) {
    if (read.exhausted) continue;
    const last = read.entries.at(-1)!;
    if (bound === null || before(last, bound)) bound = last;
  }
  const entries = reads.flatMap((read) => read.entries).filter((e) => bound === null || !before(bound, e));
  entries.sort((a, b) => (before(a, b) ? -1 : 1));
  return { entries, exhausted: bound === null };
}

/**
 * Contexts in Redis: reads, and the writes that each go through one Lua script together with
 * their change-feed entry. Every write is compare-and-set against the head token of the version
 * it was computed from, so it never loses an update. Writes to one context from this process
 * are pipelined: each is computed from the version the previous one will produce and sent
 * without waiting for it; if that one does not land, the scripts refuse the rest with "retry"
 * and they are recomputed from a fresh read.
 */
export class ContextStore {
  /** Confirmed document versions. */
  private readonly cache = new DocumentCache();
  /** Per context, the version this process's writes in flight will produce, if they all land. */
  private readonly predicted = new Map<string, Head>();
  /** Per context, how many writes are in flight from this process. */
  private readonly inFlight = new Map<string, number>();
  private readonly writesInFlight = new Set<Promise<unknown>>();
  /**
   * Per context, this process's update-index passes (indexUpdate): the one not yet started, which
   * a write that ends now joins, with the latest updatedAt written; and the end of the last one.
   */
  private readonly indexPasses = new Map<string, { at: number | null; queued: Promise<void> | null; tail: Promise<void> }>();
  private readonly feed: FeedReader;
  /** What deleted contexts leave, removed in steps; its sweep is the deletion sweeper's pass. */
  readonly deletions: Deletions;

  /**
   * `state`: the state guard (redis/state-guard.ts), which the store asks about the keys that
   * authorization cannot name: a created context's generated id, the indexes a list reads, the
   * contexts the sweepers take from them. Resolvers have checked the contexts a call names.
   * Without it (a store driven directly, in tests), nothing is checked.
   */
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly config: ContextStoreConfig,
    private readonly state?: StateCheck,
  ) {
    this.feed = new FeedReader(redis, keys, largestEntryBytes(config));
    this.deletions = new Deletions(redis, keys, config, state);
  }

  /** The current context, or null when it does not exist. */
  async get(id: string): Promise<ContextView | null> {
    return (await this.readHead(id, "document", "")).view;
  }

  /**
   * The document of `id` as of `version`: the current one, or a retained snapshot. Throws
   * NOT_FOUND when the context is gone or the version is not (or no longer) retained.
   */
  async documentAt(id: string, version: number): Promise<JsonObject> {
    const head = await this.readHead(id, "document", "");
    if (head.view?.version === version) return head.view.document!;
    return (await this.snapshot(id, version)) as JsonObject;
  }

  /** The retained snapshot of a version. Throws NOT_FOUND naming the retained range otherwise. */
  async snapshot(id: string, version: number): Promise<JsonValue> {
    const k = this.keys.context(id);
    const [current, oldest, json] = await scriptsOf(this.redis).readSnapshot(k.meta, k.snapshots, version);
    if (current === null) throw notFound(id);
    if (json === null) {
      throw new AppError(
        ErrorCode.NOT_FOUND,
        `version ${version} of context ${id} is not retained: versions ${oldest} to ${current} are`,
        { id, version, oldestRetainedVersion: oldest, currentVersion: current },
      );
    }
    return JSON.parse(json) as JsonValue;
  }

  /**
   * A page of feed entries (see HistoryRead), read one script call of at most HISTORY_SCAN_STEP
   * entries at a time. Throws RESYNC_REQUIRED when a forward read's entries right after `from`
   * are no longer retained, rather than skip them silently; if entries are trimmed under a scan
   * that has already read some, the page ends there (hasMore), and the next read is refused so.
   */
  async history(id: string, read: HistoryRead): Promise<HistoryPage> {
    const entries: FeedEntry[] = [];
    let scanned = 0;
    let bytes = 0;
    let cursor = read.from;
    for (;;) {
      const want = Math.min(HISTORY_SCAN_STEP, read.scanLimit - scanned, read.matches ? Number.MAX_SAFE_INTEGER : read.limit - entries.length);
      const room = Math.max(0, read.maxBytes - bytes);
      let batch: FeedEntry[];
      if (read.direction === "backward") {
        batch = await this.feed.readBack(id, cursor, want, room);
      } else {
        const got = await this.feed.read(id, cursor, want, room);
        if (got.trimmedTo !== null && scanned === 0) {
          throw new AppError(ErrorCode.RESYNC_REQUIRED, `changes after seq ${cursor} are no longer retained`, {
            id,
            oldestRetainedSeq: got.trimmedTo,
          });
        }
        if (got.trimmedTo !== null) return { entries, scannedTo: cursor, hasMore: true };
        batch = got.entries;
      }
      if (batch.length === 0) return { entries, scannedTo: cursor, hasMore: false };
      for (const entry of batch) {
        // Every call returns its first entry whatever its size: past the first of the page, one
        // that does not fit ends the page before it.
        if (scanned > 0 && bytes + entry.bytes > read.maxBytes) return { entries, scannedTo: cursor, hasMore: true };
        bytes += entry.bytes;
        scanned++;
        cursor = entry.seq;
        if (!read.matches || read.matches(entry)) entries.push(entry);
        if (entries.length === read.limit || scanned === read.scanLimit) return { entries, scannedTo: cursor, hasMore: true };
      }
      // A short batch ended at the bytes or at the end of the feed: reading on would read (and
      // hold) an entry more than is returned, so ask where the feed ends instead.
      if (batch.length < want) {
        const { oldest, newest } = await this.feed.retained(id);
        const more = read.direction === "backward" ? cursor! > oldest : cursor! < newest;
        return { entries, scannedTo: cursor, hasMore: more };
      }
    }
  }

  /**
   * A page of at most `first` contexts in `order`, after the position `after`, restricted by
   * `query`. Reads at most LIST_SCAN_LIMIT index entries: when they run out before the page is
   * full it ends early, with hasNextPage and `resumeAfter` the last entry read, which may be an id
   * the caller may not see. Reads each context's meta (version, seq, times), never its document.
   * The indexes are split into shards (keys.ts IndexKeys): each batch reads every shard after the
   * same position, all at once, and merges them (mergeShards), so a page is what one index gives.
   *
   * By update time the order comes from the byUpdate index, which Node updates right after each
   * write's script (indexUpdate): for that instant a context shows its new updatedAt at its old
   * position. A walk goes strictly down the order by (index time, id), so a context that exists
   * and is not written during the whole walk is returned exactly once; one written during the
   * walk moves to the front and is not seen again by this walk.
   */
  async list(first: number, after: ListPosition | null, order: ContextOrder, query: ListQuery): Promise<ContextPage> {
    const byUpdate = order === "UPDATED_AT_DESC";
    const prefix = query.idPrefix ?? "";
    const shards = this.keys.indexes;
    const found: { view: ContextView; at: ListPosition }[] = [];
    const done = (hasNextPage: boolean, resumeAfter: ListPosition | null): ContextPage => ({
      contexts: found.slice(0, first).map((f) => f.view),
      positions: found.slice(0, first).map((f) => f.at),
      hasNextPage,
      resumeAfter,
    });
    let position = after;
    let scanned = 0;
    // Batches double from about a page: few round trips past many ids the caller may not see.
    let batch = Math.max(first + 1, 16);
    // An index whose state is lost would list too little, and a context whose state is lost would
    // be left out as if it did not exist: both are refused (UNAVAILABLE), never listed blank.
    await this.state?.whenKeysIntact(shards.flatMap((ix) => (byUpdate || query.updatedAfter !== null ? [ix.contexts, ix.byUpdate] : [ix.contexts])));
    for (;;) {
      // Every shard reads as much, and all of them together stay within LIST_SCAN_LIMIT.
      const asked = Math.min(batch, Math.floor((LIST_SCAN_LIMIT - scanned) / shards.length));
      const reads = await Promise.all(
        shards.map((ix) =>
          byUpdate ? this.entriesByUpdate(ix, position, asked, query.updatedAfter) : this.entriesById(ix, position?.id ?? null, prefix, asked),
        ),
      );
      scanned += reads.reduce((n, read) => n + read.entries.length, 0);
      const { entries, exhausted } = mergeShards(reads, byUpdate ? newerFirst : idFirst);
      let candidates = entries.filter((e) => query.visible(e.id) && e.id.startsWith(prefix));
      if (!byUpdate && query.updatedAfter !== null && candidates.length > 0) {
        const scores = await this.updateTimes(candidates.map((e) => e.id));
        candidates = candidates.filter((_, i) => scores[i] != null && Number(scores[i]) > query.updatedAfter!);
      }
      // Heads are read only as far as the page needs: the indexes are supersets of what exists
      // (see delete), so ids whose context is gone are skipped and more are read.
      while (candidates.length > 0 && found.length <= first) {
        const taken = candidates.splice(0, first + 1 - found.length);
        await this.state?.whenKeysIntact(taken.map((e) => this.keys.contextBase(e.id)));
        const heads = await Promise.all(taken.map((e) => this.readHead(e.id, "head", "")));
        heads.forEach(({ view }, i) => {
          if (view && (query.updatedAfter === null || Date.parse(view.updatedAt) > query.updatedAfter)) found.push({ view, at: taken[i]! });
        });
      }
      if (found.length > first) return done(true, found[first - 1]!.at);
      if (exhausted) return done(false, found.at(-1)?.at ?? null);
      // Not exhausted: the merge holds at least a shard's read, so `entries` is not empty.
      if (LIST_SCAN_LIMIT - scanned < shards.length) return done(true, entries.at(-1)!);
      position = entries.at(-1)!;
      batch = Math.min(batch * 2, 1000);
    }
  }

  /** Up to `count` entries of a shard's id index after id `after` within `prefix`; exhausted when fewer were left. */
  private async entriesById(ix: IndexKeys, after: string | null, prefix: string, count: number): Promise<IndexRead> {
    let start = prefix ? `[${prefix}` : "-";
    if (after != null && (!prefix || after >= prefix)) start = `(${after}`;
    const end = prefix ? `[${prefix}\xff` : "+";
    const ids = await this.redis.zrangebylex(ix.contexts, start, end, "LIMIT", 0, count);
    return { entries: ids.map((id) => ({ id })), exhausted: ids.length < count };
  }

  /**
   * Up to `count` entries of a shard's update-time index after `after`, newest first, stopping at
   * the first not later than `updatedAfter` (ms); exhausted when no more can follow.
   */
  private async entriesByUpdate(ix: IndexKeys, after: ListPosition | null, count: number, updatedAfter: number | null): Promise<IndexRead> {
    const flat = await scriptsOf(this.redis).readByUpdate(ix.byUpdate, after?.at === undefined ? "" : String(after.at), after?.id ?? "", count);
    const entries: ListPosition[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const at = Number(flat[i + 1]);
      if (updatedAfter !== null && at <= updatedAfter) return { entries, exhausted: true };
      entries.push({ id: flat[i]!, at });
    }
    return { entries, exhausted: flat.length < 2 * count };
  }

  /** The update-time index scores of `ids` (ms; null: not indexed), in their order: one ZMSCORE per shard, all at once. */
  private async updateTimes(ids: readonly string[]): Promise<(string | null)[]> {
    const byShard = new Map<number, string[]>();
    for (const id of ids) {
      const shard = this.keys.shardOf(id);
      if (!byShard.has(shard)) byShard.set(shard, []);
      byShard.get(shard)!.push(id);
    }
    const scores = new Map<string, string | null>();
    await Promise.all(
      [...byShard].map(async ([shard, group]) => {
        const got = await this.redis.zmscore(this.keys.index(shard).byUpdate, ...group);
        group.forEach((id, i) => scores.set(id, got[i] ?? null));
      }),
    );
    return ids.map((id) => scores.get(id) ?? null);
  }

  /**
   * How many contexts the list would walk through for `query`, with `scope` the caller's scope as
   * id ranges (auth.ts scopeRanges). Counts index entries, so a context being created or deleted
   * at that moment may or may not be counted. Answered by ZLEXCOUNT (id ranges) or ZCOUNT
   * (updatedAfter) on every shard, summed, when one suffices; otherwise by reading at most
   * COUNT_SCAN_LIMIT entries of the smaller of the two, and null when both are larger.
   */
  async count(query: ListQuery, scope: readonly IdRange[] | "all" | null): Promise<number | null> {
    const shards = this.keys.indexes;
    await this.state?.whenKeysIntact(shards.flatMap((ix) => [ix.contexts, ix.byUpdate]));
    const prefix = query.idPrefix ?? "";
    const ranges = scope === null ? null : rangesWithin(scope === "all" ? [{ prefix: "", exact: false }] : scope, prefix);
    const sum = async (perShard: (ix: IndexKeys) => Promise<number>) => (await Promise.all(shards.map(perShard))).reduce((a, b) => a + b, 0);
    const lexCount = async (r: IdRange) =>
      r.exact
        ? Number((await this.redis.zscore(this.keys.indexOf(r.prefix).contexts, r.prefix)) !== null)
        : sum((ix) => (r.prefix === "" ? this.redis.zcard(ix.contexts) : this.redis.zlexcount(ix.contexts, `[${r.prefix}`, `[${r.prefix}\xff`)));
    const idsIn = async (r: IdRange) =>
      r.exact
        ? [r.prefix]
        : (await Promise.all(shards.map((ix) => this.redis.zrangebylex(ix.contexts, r.prefix ? `[${r.prefix}` : "-", r.prefix ? `[${r.prefix}\xff` : "+")))).flat();
    const inRanges = ranges === null ? null : (await Promise.all(ranges.map(lexCount))).reduce((a, b) => a + b, 0);
    if (query.updatedAfter === null) {
      if (inRanges !== null) return inRanges;
      // A scope of patterns: count the visible ids of the prefix's range, if few enough.
      const all = await lexCount({ prefix, exact: false });
      if (all > COUNT_SCAN_LIMIT) return null;
      return (await idsIn({ prefix, exact: false })).filter(query.visible).length;
    }
    const since = `(${query.updatedAfter}`;
    const recent = await sum((ix) => this.redis.zcount(ix.byUpdate, since, "+inf"));
    if (scope === "all" && prefix === "") return recent;
    if (recent <= COUNT_SCAN_LIMIT) {
      const ids = (await Promise.all(shards.map((ix) => this.redis.zrangebyscore(ix.byUpdate, since, "+inf")))).flat();
      return ids.filter((id) => id.startsWith(prefix) && query.visible(id)).length;
    }
    if (inRanges === null || inRanges > COUNT_SCAN_LIMIT) return null;
    const ids = (await Promise.all(ranges!.map(idsIn))).flat();
    if (ids.length === 0) return 0;
    const scores = await this.updateTimes(ids);
    return scores.filter((score) => score != null && Number(score) > query.updatedAfter!).length;
  }

  /**
   * What seals and opens the contexts list's cursors, keyed by the deployment's epoch (read on
   * every call, so that instances agree after a `reinitialize`). Throws UNAVAILABLE while the
   * epoch is not a random id (missing, or marked lost): a key derived from it would be guessable.
   */
  async listCursors(): Promise<ListCursors> {
    const epoch = await this.redis.get(this.keys.epoch);
    if (epoch === null || epoch.length < 36) {
      throw new AppError(ErrorCode.UNAVAILABLE, "the deployment's state is not verified: cursors cannot be sealed", {});
    }
    return new ListCursors(epoch);
  }

  /** Creates a context at version 1. Throws ALREADY_EXISTS, VALIDATION_FAILED, LIMIT_EXCEEDED. */
  async create(id: string | null, document: JsonValue, options: WriteOptions): Promise<ContextView> {
    // Without an id, an opId names the context, so a retry lands on the same one.
    const contextId = id ?? (options.opId ? `ctx-${fingerprintOf([options.opId]).slice(0, 22)}` : `ctx-${randomUUID()}`);
    let stored!: StoredDocument;
    checkAll(
      () => checkOpId(options.opId),
      () => checkContextId(contextId),
      () => (stored = storedDocument(document, this.config)),
    );
    const { json } = stored;
    // The id may be generated here, unseen by authorization; the counter floor bounds its seqs.
    const ix = this.keys.indexOf(contextId);
    await this.state?.whenKeysIntact([this.keys.contextBase(contextId), ix.counterFloor]);
    const record = this.opRecord(contextId, ["create", json], options);
    const head = uniqueToken();
    const dryRun = options.dryRun === true;
    // Index before and after the script: a crash leaves the index a superset, never missing a
    // context, and a delete racing this create cannot leave it out (see delete).
    if (!dryRun) {
      await Promise.all([
        this.redis.zadd(ix.contexts, 0, contextId),
        // Before the first change, so that a feed subscriber's scan (store/feed-reader.ts) finds it.
        this.redis.zadd(ix.feeds, 0, contextId),
      ]);
    }
    const settings = ledgerSettings(document as JsonObject);
    let reply: ScriptReply | undefined;
    // Pending: a deletion of this id left something to finish, or the floor was read too long ago.
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS && (!reply || "pending" in reply); attempt++) {
      if (reply) await this.deletions.finish(contextId);
      const { floor, readAtMs } = await this.deletions.floor(contextId);
      reply = parseWriteReply(
        await scriptsOf(this.redis).createContext(
          ...this.writeKeys(contextId, record),
          record.fingerprint,
          stored.order,
          options.actor,
          options.reason ?? "",
          new Date().toISOString(),
          this.config.feedRetention,
          record.ttlSeconds,
          this.keys.changesChannel,
          contextId,
          '[""]',
          `[{"op":"add","path":"","value":${json}}]`,
          head,
          settings.limits,
          settings.policy,
          dryRun ? "1" : "",
          this.keys.contextBase(contextId),
          floor,
          readAtMs,
          Math.floor(this.config.deletedContextRetentionMs / 4),
          ...stored.members,
        ),
        record,
      );
    }
    if ("pending" in reply!) throw new Error(`create of context ${contextId} kept finding its deletion unfinished after ${MAX_WRITE_ATTEMPTS} attempts`);
    const { outcome, replayed } = settle<WriteReply>(reply!);
    if (dryRun) return replayed ? { id: contextId, ...outcome } : { id: contextId, ...outcome, document: document as JsonObject };
    // Again after the script: a prune of an earlier context of this id may have taken it out meanwhile (store/deletions.ts).
    await Promise.all([
      this.redis.zadd(ix.contexts, 0, contextId),
      this.redis.zadd(ix.feeds, 0, contextId),
      this.indexUpdate(contextId, Date.parse(outcome.updatedAt)),
    ]);
    if (replayed) return { id: contextId, ...outcome };
    this.cache.set(contextId, { version: outcome.version, head, document: document as JsonObject, bytes: stored.bytes });
    return { id: contextId, ...outcome, document: document as JsonObject };
  }

  /**
   * Applies an RFC 6902 patch (all-or-nothing) as the next version; a patch whose result equals
   * the current document writes nothing (see update). Throws INVALID_PATCH, VALIDATION_FAILED,
   * LIMIT_EXCEEDED, VERSION_CONFLICT, STALE_FENCE, NOT_FOUND.
   */
  patch(id: string, patch: readonly PatchOperation[], options: WriteOptions): Promise<ContextView> {
    for (const op of patch) if (op.value !== undefined) checkDepth(op.value, this.config, "a patch value");
    return this.update(id, "UPDATED", ["patch", patch], options, (doc) => applyPatch(doc, patch));
  }

  /** Applies an RFC 7386 merge patch as the next version, or writes nothing when it changes nothing (as patch). */
  merge(id: string, merge: JsonValue, options: WriteOptions): Promise<ContextView> {
    checkDepth(merge, this.config, "the merge patch");
    return this.update(id, "UPDATED", ["merge", merge], options, (doc) => applyMergePatch(doc, merge));
  }

  /**
   * Writes a new version whose document equals the retained snapshot of `toVersion`, or nothing
   * when the current document already equals it (as patch).
   */
  async rollback(id: string, toVersion: number, options: WriteOptions): Promise<ContextView> {
    const request = ["rollback", toVersion];
    let target: JsonValue;
    try {
      target = await this.snapshot(id, toVersion);
    } catch (err) {
      // A retry of a rollback that was applied must get its outcome, even if the snapshot is gone.
      if (!(err instanceof AppError) || !options.opId) throw err;
      const record = this.opRecord(id, request, options);
      const { recorded } = await this.readHead(id, "head", record.fingerprint, record.key);
      if (recorded) return { id, ...settle<WriteReply>(await this.replayed(record, recorded)).outcome };
      throw err;
    }
    return this.update(id, "ROLLED_BACK", request, options, (doc) => diffDocuments(doc, target));
  }

  /**
   * Deletes a context: its document and history at once, its allocations and locks ended (the
   * ledger scripts find no context) and their keys removed in bounded steps, back to back, before
   * this answers; its feed records DELETED and is kept for the deleted-context retention
   * (store/deletions.ts).
   */
  async delete(id: string, options: WriteOptions): Promise<DeletedContext> {
    checkOpId(options.opId);
    const k = this.keys.context(id);
    const record = this.opRecord(id, ["delete"], options);
    // Filed first: if this server stops before the purge is done, the sweeper finishes it.
    await this.deletions.fileForPurge(id);
    const reply = parseWriteReply(
      await scriptsOf(this.redis).deleteContext(
        ...this.writeKeys(id, record),
        record.fingerprint,
        options.expectedVersion ?? "",
        options.actor,
        options.reason ?? "",
        new Date().toISOString(),
        this.config.feedRetention,
        record.ttlSeconds,
        this.keys.changesChannel,
        id,
        this.keys.contextBase(id),
      ),
      record,
    );
    await this.deletions.purge(id);
    const { outcome } = settle<{ version: number; seq: number }>(reply);
    this.cache.delete(id);
    const ix = this.keys.indexOf(id);
    await Promise.all([this.redis.zrem(ix.contexts, id), this.indexUpdate(id, null)]);
    // A create of the same id may have indexed itself between our script and ZREM: put it back.
    if ((await this.redis.exists(k.meta)) === 1) await this.redis.zadd(ix.contexts, 0, id);
    return { id, version: outcome.version, seq: outcome.seq };
  }

  /**
   * The compute-and-write loop shared by patch, merge and rollback. The change is computed from
   * the predicted or cached version when there is one; a refusal computed from such a version is
   * confirmed against a fresh read (which also finds a recorded opId) before it is reported.
   * A change whose document equals its base's writes no version and no feed entry, as etcd's
   * compare does: the script still checks the fence, expectedVersion and that the base is the
   * head, records the answer under a client opId, and answers with the current version and seq.
   */
  private async update(
    id: string,
    kind: ChangeKind,
    request: readonly unknown[],
    options: WriteOptions,
    compute: (doc: JsonObject) => AppliedChange,
  ): Promise<ContextView> {
    checkAll(
      () => checkOpId(options.opId),
      () => options.fence && checkLockName(options.fence.lock, "fence.lock"),
    );
    const clientRecord = options.opId ? this.opRecord(id, request, options) : null;
    let base: Head | undefined = this.predicted.get(id) ?? this.cache.get(id);
    let fresh = false;
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      if (!base) {
        const read = await this.readHead(id, "document", clientRecord?.fingerprint ?? "", clientRecord?.key);
        if (read.recorded) return { id, ...settle<WriteReply>(await this.replayed(clientRecord!, read.recorded)).outcome };
        if (!read.view || !read.head) throw notFound(id);
        // Writes this process sent meanwhile will land first: build on them, not on the read.
        base = this.predicted.get(id) ?? read.head;
        fresh = base === read.head;
      }
      // From here to sending the script nothing awaits, so writes chain in the order they are sent.
      let change: AppliedChange;
      let written: DocumentChange;
      try {
        if (options.expectedVersion != null && options.expectedVersion !== base.version) {
          throw new AppError(
            ErrorCode.VERSION_CONFLICT,
            `expected version ${options.expectedVersion} but the context is at ${base.version}`,
            { currentVersion: base.version },
          );
        }
        change = compute(base.document);
        written = documentChange(base.document, base.bytes, change.document, this.config);
      } catch (err) {
        if (err instanceof AppError && !fresh) {
          base = undefined;
          continue;
        }
        throw err;
      }
      const idle = written.order === "";
      const next: Head = idle ? base : { version: base.version + 1, head: uniqueToken(), document: change.document as JsonObject, bytes: written.bytes };
      const record = clientRecord ?? this.opRecord(id, request, options);
      const settings = !idle && touchesLedgerSettings(change.paths) ? ledgerSettings(next.document) : { limits: "-", policy: "-" };
      const dryRun = options.dryRun === true;
      const send = () =>
        scriptsOf(this.redis)
          .updateContext(
            ...this.writeKeys(id, record),
            record.fingerprint,
            base!.head,
            options.expectedVersion ?? "",
            written.order,
            kind,
            JSON.stringify(change.paths),
            JSON.stringify(change.patch),
            options.actor,
            options.reason ?? "",
            new Date().toISOString(),
            this.config.historyLimit,
            this.config.feedRetention,
            record.ttlSeconds,
            this.keys.changesChannel,
            id,
            next.head,
            settings.limits,
            settings.policy,
            options.fence?.lock ?? "",
            options.fence?.token ?? "",
            options.fence ? this.keys.context(id).lock(options.fence.lock) : "",
            dryRun ? "1" : "",
            ...written.members,
          )
          .then((raw) => parseWriteReply(raw, record));
      // A dry run produces no version: nothing may be predicted or cached from it.
      const reply = dryRun
        ? await send()
        : await this.inFlightWrite(id, next, () =>
            send().then((reply) => {
              if ("ok" in reply) this.cache.set(id, next);
              else this.predicted.delete(id);
              return reply;
            }),
          );
      if ("retry" in reply) {
        base = undefined;
        fresh = false;
        continue;
      }
      const { outcome, replayed } = settle<WriteReply>(reply);
      if (!idle && !dryRun) await this.indexUpdate(id, Date.parse(outcome.updatedAt));
      if (replayed) return { id, ...outcome };
      return { id, ...outcome, document: next.document };
    }
    throw new Error(`write to context ${id} kept losing the race after ${MAX_WRITE_ATTEMPTS} attempts`);
  }

  /**
   * Brings the update-time index entry of `id` to its meta's updatedAt (ms; absent: no entry),
   * after a script wrote `at` (null: deleted). The index lies outside the context's slot, so no
   * script can write it with the meta: every writer, after its script, writes what it knows, then
   * reads the meta and writes again until what it read is what it last wrote. The last index write
   * of all then follows the last meta change, so the entry ends equal to the meta once writers
   * stop; a writer that crashes between its script and here leaves the entry behind the meta
   * until the context's next write. Within this process the writes to one context share these
   * passes: a write waits for the first pass that starts after its script, so one pass serves every
   * write that ended while the one before it ran.
   */
  private indexUpdate(id: string, at: number | null): Promise<void> {
    const passes = this.indexPasses.get(id);
    if (passes?.queued) {
      passes.at = at;
      return passes.queued;
    }
    const state = passes ?? { at, queued: null, tail: Promise.resolve() };
    state.at = at;
    const pass = state.tail.then(() => {
      state.queued = null;
      return this.reconcileIndex(id, state.at);
    });
    const tail = pass.catch(() => undefined);
    state.queued = pass;
    state.tail = tail;
    this.indexPasses.set(id, state);
    void tail.then(() => {
      if (state.tail === tail) this.indexPasses.delete(id);
    });
    return pass;
  }

  /** One pass of indexUpdate: writes `at`, then what the meta says, until the two agree. */
  private async reconcileIndex(id: string, at: number | null): Promise<void> {
    const index = this.keys.indexOf(id).byUpdate;
    let wrote = at;
    for (let round = 0; round < INDEX_RECONCILE_ROUNDS; round++) {
      const write = wrote === null ? this.redis.zrem(index, id) : this.redis.zadd(index, wrote, id);
      const [, updatedAt] = await Promise.all([write, this.redis.hget(this.keys.context(id).meta, "updatedAt")]);
      const now = updatedAt === null ? null : Date.parse(updatedAt);
      if (now === wrote) return;
      wrote = now;
    }
  }

  /**
   * Sends a write whose success produces `next`, recording `next` as the predicted version so
   * that writes after it can be computed from it before it is acknowledged.
   */
  private async inFlightWrite<T>(id: string, next: Head, send: () => Promise<T>): Promise<T> {
    this.predicted.set(id, next);
    this.inFlight.set(id, (this.inFlight.get(id) ?? 0) + 1);
    const sent = send();
    this.writesInFlight.add(sent);
    try {
      return await sent;
    } finally {
      this.writesInFlight.delete(sent);
      const left = this.inFlight.get(id)! - 1;
      if (left > 0) {
        this.inFlight.set(id, left);
      } else {
        this.inFlight.delete(id);
        this.predicted.delete(id);
      }
    }
  }

  /**
   * The outcome a read found recorded under `record`, replayed the way a write replays it, so that
   * it is confirmed on replicas like any write (SWARM_REDIS_WAIT_REPLICAS) before it is acknowledged.
   */
  private async replayed(record: OpRecord, found: ScriptReply): Promise<ScriptReply> {
    const raw = await scriptsOf(this.redis).replay(record.key, record.fingerprint);
    // Gone since the read (its opId's time ran out): what the read found is all there is.
    return raw === null ? found : parseReply(raw);
  }

  /** The keys every document script takes, in its KEYS order. */
  private writeKeys(id: string, record: OpRecord): DocumentKeys {
    const k = this.keys.context(id);
    return [k.meta, k.seq, k.snapshots, k.feed, record.key, k.limits, k.policy];
  }

  /** Where a write records its outcome. */
  private opRecord(id: string, request: readonly unknown[], options: WriteOptions): OpRecord {
    const whole = [...request, id, options.expectedVersion ?? null, options.reason ?? null, options.fence ?? null];
    return opRecord(this.keys, id, options.opId, whole, this.config);
  }

  /**
   * One round trip for a context's head, with its document in "document" mode (sent over the
   * wire only when the cache does not hold the current version, by head token: a version number
   * alone could name a version of an earlier context of the same id), and the reply recorded
   * under `opKey` if its fingerprint is given.
   */
  private async readHead(
    id: string,
    mode: "document" | "head",
    fingerprint: string,
    opKey = this.keys.op(id, ""),
  ): Promise<{ view: ContextView | null; head: Head | null; recorded: ScriptReply | null }> {
    const k = this.keys.context(id);
    const cached = mode === "document" ? this.cache.get(id) : undefined;
    const known = mode === "head" ? "-" : (cached?.head ?? "");
    const [version, seq, createdAt, updatedAt, updatedBy, json, recorded, headToken] = await scriptsOf(this.redis).readContext(
      k.meta,
      k.seq,
      opKey,
      known,
      fingerprint,
    );
    const recordedReply = recorded ? parseReply(recorded) : null;
    if (version === null) return { view: null, head: null, recorded: recordedReply };
    let head: Head | null = null;
    if (json !== null) {
      head = { version, head: headToken, document: JSON.parse(json) as JsonObject, bytes: Buffer.byteLength(json) };
      this.cache.set(id, head);
    } else if (cached) {
      head = cached;
    }
    const view = { id, version, seq, createdAt, updatedAt, updatedBy, document: head?.document };
    return { view, head, recorded: recordedReply };
  }

  /**
   * Moves every context that an earlier version of the server stored whole (meta field `doc`, a
   * full snapshot per version) to the storage by member, its retained history with it. Each is
   * read, split and written back by one script that checks nothing moved meanwhile; one already
   * moved, or written meanwhile, is left as it is. Runs at start, before any request. Resolves
   * with how many contexts it moved.
   */
  async migrateLegacyDocuments(): Promise<number> {
    let moved = 0;
    for (const index of this.keys.indexes) {
      for (let start = 0; ; start += LEGACY_SCAN_PAGE) {
        const ids = await this.redis.zrange(index.contexts, start, start + LEGACY_SCAN_PAGE - 1);
        const legacy = await Promise.all(ids.map((id) => this.redis.hexists(this.keys.context(id).meta, "doc")));
        for (const [i, id] of ids.entries()) if (legacy[i]) moved += await this.migrateLegacy(id);
        if (ids.length < LEGACY_SCAN_PAGE) break;
      }
    }
    return moved;
  }

  private async migrateLegacy(id: string): Promise<number> {
    const k = this.keys.context(id);
    const [head, doc, version, oldest] = await this.redis.hmget(k.meta, "head", "doc", "version", "oldestSnapshot");
    if (head == null || doc == null || version == null) return 0;
    const current = Number(version);
    const versions = Array.from({ length: current - Number(oldest ?? current) + 1 }, (_, i) => Number(oldest ?? current) + i);
    const stored = versions.length > 0 ? await this.redis.hmget(k.snapshots, ...versions.map(String)) : [];
    // Keep the history only as far back as it is unbroken up to the current version.
    let from = stored.length;
    while (from > 0 && stored[from - 1] !== null) from--;
    const snapshots = versions.slice(from).map((v, i) => ({ version: v, document: JSON.parse(stored[from + i]!) as JsonObject }));
    const document = JSON.parse(doc) as JsonObject;
    if (snapshots.at(-1)?.version !== current) snapshots.splice(0, snapshots.length, { version: current, document });
    const { order, members } = membersOf(document);
    return scriptsOf(this.redis).migrateDocument(k.meta, k.snapshots, head, order, snapshots[0]!.version, members.length, ...members, ...replacedFields(snapshots));
  }

  /** Resolves once every write this process has sent has been answered. */
  async drain(): Promise<void> {
    while (this.writesInFlight.size > 0) await Promise.allSettled([...this.writesInFlight]);
  }
}
