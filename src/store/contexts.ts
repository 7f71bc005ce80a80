import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { AppError, ErrorCode } from "../errors.js";
import { diffDocuments } from "../json/diff.js";
import { applyMergePatch } from "../json/merge.js";
import { applyPatch, type AppliedChange, type PatchOperation } from "../json/patch.js";
import { jsonEqual, type JsonObject, type JsonValue } from "../json/types.js";
import type { Keys } from "../redis/keys.js";
import { scriptsOf, type DocumentKeys } from "../redis/scripts.js";
import { Deletions } from "./deletions.js";
import { DocumentCache, type Head } from "./document-cache.js";
import { checkDepth, checkDocument, type DocumentLimits } from "./document-rules.js";
import { CONTEXT_ID, checkLockName } from "../model/identifiers.js";
import { FeedReader, largestEntryBytes, type FeedEntry } from "./feed-reader.js";
import { ledgerSettings, touchesLedgerSettings } from "./ledger-settings.js";
import { ListCursors } from "./list-cursors.js";
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
  readonly hasNextPage: boolean;
  /** The id the next page starts after (not always one of `contexts`); null when nothing was found and nothing is left. */
  readonly resumeAfter: string | null;
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
  private readonly feed: FeedReader;
  /** What deleted contexts leave, removed in steps; its sweep is the deletion sweeper's pass. */
  readonly deletions: Deletions;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly config: ContextStoreConfig,
  ) {
    this.feed = new FeedReader(redis, keys, largestEntryBytes(config));
    this.deletions = new Deletions(redis, keys, config);
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
    const [json, current, oldest] = await this.redis
      .multi()
      .hget(k.snapshots, String(version))
      .hget(k.meta, "version")
      .hget(k.meta, "oldestSnapshot")
      .exec()
      .then((results) => results!.map(([, value]) => value as string | null));
    if (current == null) throw notFound(id);
    if (json == null) {
      throw new AppError(
        ErrorCode.NOT_FOUND,
        `version ${version} of context ${id} is not retained: versions ${oldest} to ${current} are`,
        { id, version, oldestRetainedVersion: Number(oldest), currentVersion: Number(current) },
      );
    }
    return JSON.parse(json) as JsonValue;
  }

  /**
   * Feed entries after `afterSeq`, oldest first, at most `limit`, and past the first only while
   * their bytes (FeedEntry.bytes) add up to at most `maxBytes`. Throws RESYNC_REQUIRED when
   * entries right after `afterSeq` are no longer retained, rather than skip them silently.
   */
  async history(id: string, afterSeq: number | null, limit: number, maxBytes: number): Promise<FeedEntry[]> {
    const { entries, trimmedTo } = await this.feed.read(id, afterSeq, limit, maxBytes);
    if (trimmedTo !== null) {
      throw new AppError(ErrorCode.RESYNC_REQUIRED, `changes after seq ${afterSeq} are no longer retained`, {
        id,
        oldestRetainedSeq: trimmedTo,
      });
    }
    return entries;
  }

  /**
   * A page of at most `first` contexts ordered by id, after the id `after`, restricted to
   * `idPrefix` and to the ids `visible` accepts (the caller's scope). Reads at most
   * LIST_SCAN_LIMIT index entries: when they run out before the page is full it ends early, with
   * hasNextPage and `resumeAfter` the last entry read, which may be an id the caller may not see.
   */
  async list(first: number, after: string | null, idPrefix: string | null, visible: (id: string) => boolean): Promise<ContextPage> {
    const prefix = idPrefix ?? "";
    let start = prefix ? `[${prefix}` : "-";
    if (after != null && (!prefix || after >= prefix)) start = `(${after}`;
    const end = prefix ? `[${prefix}\xff` : "+";
    const found: ContextView[] = [];
    let scanned = 0;
    // Batches double from about a page: few round trips past many ids the caller may not see.
    let batch = Math.max(first + 1, 16);
    for (;;) {
      const asked = Math.min(batch, LIST_SCAN_LIMIT - scanned);
      const ids = await this.redis.zrangebylex(this.keys.contextIndex, start, end, "LIMIT", 0, asked);
      scanned += ids.length;
      const candidates = ids.filter(visible);
      // Heads are read only as far as the page needs: the index is a superset of what exists
      // (see delete), so ids whose context is gone are skipped and more are read.
      while (candidates.length > 0 && found.length <= first) {
        const heads = await Promise.all(candidates.splice(0, first + 1 - found.length).map((id) => this.readHead(id, "head", "")));
        for (const head of heads) if (head.view) found.push(head.view);
      }
      if (found.length > first) return { contexts: found.slice(0, first), hasNextPage: true, resumeAfter: found[first - 1]!.id };
      if (ids.length < asked) return { contexts: found, hasNextPage: false, resumeAfter: found.at(-1)?.id ?? null };
      if (scanned === LIST_SCAN_LIMIT) return { contexts: found, hasNextPage: true, resumeAfter: ids.at(-1)! };
      start = `(${ids.at(-1)}`;
      batch = Math.min(batch * 2, 1000);
    }
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
    checkOpId(options.opId);
    // Without an id, an opId names the context, so a retry lands on the same one.
    const contextId = id ?? (options.opId ? `ctx-${fingerprintOf([options.opId]).slice(0, 22)}` : `ctx-${randomUUID()}`);
    checkContextId(contextId);
    const json = checkDocument(document, this.config);
    const record = this.opRecord(contextId, ["create", json], options);
    const head = uniqueToken();
    // Index before and after the script: a crash leaves the index a superset, never missing a
    // context, and a delete racing this create cannot leave it out (see delete).
    await Promise.all([
      this.redis.zadd(this.keys.contextIndex, 0, contextId),
      // Before the first change, so that a feed subscriber's scan (store/feed-reader.ts) finds it.
      this.redis.zadd(this.keys.feedIndex, 0, contextId),
    ]);
    const settings = ledgerSettings(document as JsonObject);
    let reply: ScriptReply | undefined;
    // Pending: a deletion of this id left something to finish, or the floor was read too long ago.
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS && (!reply || "pending" in reply); attempt++) {
      await this.deletions.finish(contextId);
      const { floor, readAtMs } = await this.deletions.floor();
      reply = parseWriteReply(
        await scriptsOf(this.redis).createContext(
          ...this.writeKeys(contextId, record),
          record.fingerprint,
          json,
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
          this.keys.contextBase(contextId),
          floor,
          readAtMs,
          Math.floor(this.config.deletedContextRetentionMs / 4),
        ),
        record,
      );
    }
    if ("pending" in reply!) throw new Error(`create of context ${contextId} kept finding its deletion unfinished after ${MAX_WRITE_ATTEMPTS} attempts`);
    const { outcome, replayed } = settle<WriteReply>(reply!);
    // Again after the script: a prune of an earlier context of this id may have taken it out meanwhile (store/deletions.ts).
    await Promise.all([this.redis.zadd(this.keys.contextIndex, 0, contextId), this.redis.zadd(this.keys.feedIndex, 0, contextId)]);
    if (replayed) return { id: contextId, ...outcome };
    this.cache.set(contextId, { version: outcome.version, head, document: document as JsonObject }, json.length);
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
      if (recorded) return { id, ...settle<WriteReply>(recorded).outcome };
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
    await this.redis.zrem(this.keys.contextIndex, id);
    // A create of the same id may have indexed itself between our script and ZREM: put it back.
    if ((await this.redis.exists(k.meta)) === 1) await this.redis.zadd(this.keys.contextIndex, 0, id);
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
    checkOpId(options.opId);
    if (options.fence) checkLockName(options.fence.lock, "fence.lock");
    const clientRecord = options.opId ? this.opRecord(id, request, options) : null;
    let base: Head | undefined = this.predicted.get(id) ?? this.cache.get(id);
    let fresh = false;
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      if (!base) {
        const read = await this.readHead(id, "document", clientRecord?.fingerprint ?? "", clientRecord?.key);
        if (read.recorded) return { id, ...settle<WriteReply>(read.recorded).outcome };
        if (!read.view || !read.head) throw notFound(id);
        // Writes this process sent meanwhile will land first: build on them, not on the read.
        base = this.predicted.get(id) ?? read.head;
        fresh = base === read.head;
      }
      // From here to sending the script nothing awaits, so writes chain in the order they are sent.
      let change: AppliedChange;
      let json: string;
      try {
        if (options.expectedVersion != null && options.expectedVersion !== base.version) {
          throw new AppError(
            ErrorCode.VERSION_CONFLICT,
            `expected version ${options.expectedVersion} but the context is at ${base.version}`,
            { currentVersion: base.version },
          );
        }
        change = compute(base.document);
        json = checkDocument(change.document, this.config);
      } catch (err) {
        if (err instanceof AppError && !fresh) {
          base = undefined;
          continue;
        }
        throw err;
      }
      const idle = jsonEqual(change.document, base.document);
      const next: Head = idle ? base : { version: base.version + 1, head: uniqueToken(), document: change.document as JsonObject };
      const record = clientRecord ?? this.opRecord(id, request, options);
      const settings = !idle && touchesLedgerSettings(change.paths) ? ledgerSettings(next.document) : { limits: "-", policy: "-" };
      const reply = await this.inFlightWrite(id, next, () =>
        scriptsOf(this.redis)
          .updateContext(
            ...this.writeKeys(id, record),
            record.fingerprint,
            base!.head,
            options.expectedVersion ?? "",
            idle ? "" : json,
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
          )
          .then((raw) => {
            const reply = parseWriteReply(raw, record);
            if ("ok" in reply) this.cache.set(id, next, json.length);
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
      if (replayed) return { id, ...outcome };
      return { id, ...outcome, document: next.document };
    }
    throw new Error(`write to context ${id} kept losing the race after ${MAX_WRITE_ATTEMPTS} attempts`);
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
      head = { version, head: headToken, document: JSON.parse(json) as JsonObject };
      this.cache.set(id, head, json.length);
    } else if (cached) {
      head = cached;
    }
    const view = { id, version, seq, createdAt, updatedAt, updatedBy, document: head?.document };
    return { view, head, recorded: recordedReply };
  }

  /** Resolves once every write this process has sent has been answered. */
  async drain(): Promise<void> {
    while (this.writesInFlight.size > 0) await Promise.allSettled([...this.writesInFlight]);
  }
}
