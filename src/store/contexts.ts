import { createHash, randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { AppError, ErrorCode, refusalToError, type ScriptRefusal } from "../errors.js";
import { diffDocuments } from "../json/diff.js";
import { applyMergePatch } from "../json/merge.js";
import { applyPatch, type AppliedChange, type PatchOperation } from "../json/patch.js";
import type { JsonObject, JsonValue } from "../json/types.js";
import type { Keys } from "../redis/keys.js";
import { runScript } from "../redis/scripts.js";
import { DocumentCache } from "./document-cache.js";
import { CONTEXT_ID, checkDepth, checkDocument, type DocumentLimits } from "./document-rules.js";

export interface ContextStoreConfig extends DocumentLimits {
  readonly historyLimit: number;
  readonly feedRetention: number;
  readonly opIdTtlSeconds: number;
}

/** Who asks for a change and why; `opId` makes it idempotent. */
export interface WriteOptions {
  readonly actor: string;
  readonly opId?: string | null;
  readonly expectedVersion?: number | null;
  readonly reason?: string | null;
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

export type ChangeKind = "CREATED" | "UPDATED" | "ROLLED_BACK" | "DELETED";

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
}

export interface ContextPage {
  readonly contexts: readonly ContextView[];
  readonly hasNextPage: boolean;
}

interface Head {
  readonly version: number;
  readonly document: JsonObject;
}

interface WriteReply {
  readonly version: number;
  readonly seq: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly updatedBy: string;
}

type ScriptReply =
  | ({ ok: true } & WriteReply)
  | { replayed: true; reply: ScriptReply }
  | { retry: true; currentVersion: number }
  | ScriptRefusal;

/** Attempts of one write whose base keeps moving under it before we call it a server fault. */
const MAX_WRITE_ATTEMPTS = 1000;
const OP_ID_MAX_LENGTH = 200;

function notFound(id: string): AppError {
  return new AppError(ErrorCode.NOT_FOUND, `context ${id} does not exist`, { id });
}

function checkContextId(id: string): void {
  if (!CONTEXT_ID.test(id)) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, `context id must match ${CONTEXT_ID.source}`, { path: "id" });
  }
}

function checkOpId(opId: string | null | undefined): void {
  if (opId != null && (opId.length === 0 || opId.length > OP_ID_MAX_LENGTH)) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, `opId must be 1 to ${OP_ID_MAX_LENGTH} characters`, { path: "opId" });
  }
}

function fingerprintOf(parts: readonly unknown[]): string {
  return createHash("sha1").update(JSON.stringify(parts)).digest("base64url");
}

function parseReply(raw: unknown): ScriptReply {
  return JSON.parse(raw as string) as ScriptReply;
}

/**
 * The first reply of a write (fresh or recorded under its opId): throws its refusal, returns its
 * outcome, and says whether it was a replay.
 */
function settle<T>(reply: ScriptReply): { outcome: T; replayed: boolean } {
  if ("replayed" in reply) return { outcome: settle<T>(reply.reply as ScriptReply).outcome, replayed: true };
  if ("error" in reply) throw refusalToError(reply);
  return { outcome: reply as T, replayed: false };
}

/**
 * Contexts in Redis: reads, and the writes that each go through one Lua script together with
 * their change-feed entry. Writes to one context from this process run one at a time (so they
 * rarely race each other), and are compare-and-set against the version they were computed from
 * (so they never lose an update to another process).
 */
export class ContextStore {
  private readonly cache = new DocumentCache();
  private readonly writeQueues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly config: ContextStoreConfig,
  ) {}

  /** The current context, or null when it does not exist. */
  async get(id: string): Promise<ContextView | null> {
    return (await this.readHead(id, "document", "")).view;
  }

  /**
   * The document of `id` as of `version`: the current one, or a retained snapshot. Throws
   * NOT_FOUND when the context is gone or the version is not (or no longer) retained.
   */
  async documentAt(id: string, version: number): Promise<JsonObject> {
    const cached = this.cache.get(id);
    if (cached?.version === version) return cached.document;
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
   * Feed entries after `afterSeq`, oldest first, at most `limit`. Throws RESYNC_REQUIRED when
   * entries right after `afterSeq` are no longer retained, rather than skip them silently.
   */
  async history(id: string, afterSeq: number | null, limit: number): Promise<ChangeEntry[]> {
    const feed = this.keys.context(id).feed;
    const start = afterSeq == null ? "-" : `(${afterSeq}-0`;
    const entries = (await this.redis.xrange(feed, start, "+", "COUNT", limit)).map(([entryId, fields]) =>
      toChangeEntry(id, entryId, fields),
    );
    if (afterSeq != null && afterSeq > 0) {
      const first = entries[0]?.seq ?? null;
      if (first !== afterSeq + 1) {
        const [oldest] = await this.redis.xrange(feed, "-", "+", "COUNT", 1);
        const oldestSeq = oldest ? Number(oldest[0].split("-")[0]) : null;
        if (oldestSeq !== null && oldestSeq > afterSeq + 1) {
          throw new AppError(ErrorCode.RESYNC_REQUIRED, `changes after seq ${afterSeq} are no longer retained`, {
            id,
            oldestRetainedSeq: oldestSeq,
          });
        }
      }
    }
    return entries;
  }

  /** A page of contexts ordered by id, after the id `after`, restricted to `idPrefix`. */
  async list(first: number, after: string | null, idPrefix: string | null): Promise<ContextPage> {
    const prefix = idPrefix ?? "";
    let start = prefix ? `[${prefix}` : "-";
    if (after != null && (!prefix || after >= prefix)) start = `(${after}`;
    const end = prefix ? `[${prefix}\xff` : "+";
    const found: ContextView[] = [];
    const batch = Math.min(Math.max(first + 1, 16), 1000);
    for (;;) {
      const ids = await this.redis.zrangebylex(this.keys.contextIndex, start, end, "LIMIT", 0, batch);
      const heads = await Promise.all(ids.map((id) => this.readHead(id, "head", "")));
      // The index is a superset of what exists (see delete): skip ids whose context is gone.
      for (const head of heads) if (head.view) found.push(head.view);
      if (found.length > first || ids.length < batch) break;
      start = `(${ids[ids.length - 1]}`;
    }
    return { contexts: found.slice(0, first), hasNextPage: found.length > first };
  }

  /** Creates a context at version 1. Throws ALREADY_EXISTS, VALIDATION_FAILED, LIMIT_EXCEEDED. */
  async create(id: string | null, document: JsonValue, options: WriteOptions): Promise<ContextView> {
    checkOpId(options.opId);
    // Without an id, an opId names the context, so a retry lands on the same one.
    const contextId = id ?? (options.opId ? `ctx-${fingerprintOf([options.opId]).slice(0, 22)}` : `ctx-${randomUUID()}`);
    checkContextId(contextId);
    const json = checkDocument(document, this.config);
    const k = this.keys.context(contextId);
    const fingerprint = fingerprintOf(["create", contextId, json, options.reason ?? null]);
    // Index before and after the script: a crash leaves the index a superset, never missing a
    // context, and a delete racing this create cannot leave it out (see delete).
    await this.redis.zadd(this.keys.contextIndex, 0, contextId);
    const reply = parseReply(
      await runScript(this.redis, "create-context", [k.meta, k.seq, k.snapshots, k.feed, this.keys.op(contextId, options.opId ?? "")], [
        options.opId ?? "",
        fingerprint,
        json,
        options.actor,
        options.reason ?? "",
        new Date().toISOString(),
        this.config.feedRetention,
        this.config.opIdTtlSeconds,
        this.keys.changesChannel,
        contextId,
        '[""]',
        `[{"op":"add","path":"","value":${json}}]`,
      ]),
    );
    const { outcome, replayed } = settle<WriteReply>(reply);
    await this.redis.zadd(this.keys.contextIndex, 0, contextId);
    if (replayed) return { id: contextId, ...outcome };
    this.cache.set(contextId, outcome.version, document as JsonObject, json.length);
    return { id: contextId, ...outcome, document: document as JsonObject };
  }

  /** Applies an RFC 6902 patch (all-or-nothing) as the next version. */
  patch(id: string, patch: readonly PatchOperation[], options: WriteOptions): Promise<ContextView> {
    for (const op of patch) if (op.value !== undefined) checkDepth(op.value, this.config, "a patch value");
    return this.update(id, "UPDATED", ["patch", patch], options, async (doc) => applyPatch(doc, patch));
  }

  /** Applies an RFC 7386 merge patch as the next version. */
  merge(id: string, merge: JsonValue, options: WriteOptions): Promise<ContextView> {
    checkDepth(merge, this.config, "the merge patch");
    return this.update(id, "UPDATED", ["merge", merge], options, async (doc) => applyMergePatch(doc, merge));
  }

  /** Writes a new version whose document equals the retained snapshot of `toVersion`. */
  rollback(id: string, toVersion: number, options: WriteOptions): Promise<ContextView> {
    return this.update(id, "ROLLED_BACK", ["rollback", toVersion], options, async (doc) =>
      diffDocuments(doc, await this.snapshot(id, toVersion)),
    );
  }

  /** Deletes a context (its document and history); its feed records DELETED. */
  async delete(id: string, options: WriteOptions): Promise<DeletedContext> {
    checkOpId(options.opId);
    const k = this.keys.context(id);
    const fingerprint = fingerprintOf(["delete", id, options.expectedVersion ?? null, options.reason ?? null]);
    const reply = parseReply(
      await runScript(this.redis, "delete-context", [k.meta, k.seq, k.snapshots, k.feed, this.keys.op(id, options.opId ?? "")], [
        options.opId ?? "",
        fingerprint,
        options.expectedVersion ?? "",
        options.actor,
        options.reason ?? "",
        new Date().toISOString(),
        this.config.feedRetention,
        this.config.opIdTtlSeconds,
        this.keys.changesChannel,
        id,
      ]),
    );
    const { outcome } = settle<{ version: number; seq: number }>(reply);
    this.cache.delete(id);
    await this.redis.zrem(this.keys.contextIndex, id);
    // A create of the same id may have indexed itself between our script and ZREM: put it back.
    if ((await this.redis.exists(k.meta)) === 1) await this.redis.zadd(this.keys.contextIndex, 0, id);
    return { id, version: outcome.version, seq: outcome.seq };
  }

  /**
   * The read-compute-write loop shared by patch, merge and rollback. The change is computed from
   * the cached document when there is one; a refusal computed from a cached document is
   * confirmed against a fresh read (which also finds a recorded opId) before it is reported.
   */
  private update(
    id: string,
    kind: ChangeKind,
    request: readonly unknown[],
    options: WriteOptions,
    compute: (doc: JsonObject) => Promise<AppliedChange>,
  ): Promise<ContextView> {
    checkOpId(options.opId);
    const fingerprint = fingerprintOf([...request, id, options.expectedVersion ?? null, options.reason ?? null]);
    const k = this.keys.context(id);
    const opKey = this.keys.op(id, options.opId ?? "");
    return this.serialized(id, async () => {
      let base: Head | undefined = this.cache.get(id);
      let fresh = false;
      for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
        if (!base) {
          const head = await this.readHead(id, "document", options.opId ? fingerprint : "", opKey);
          if (head.recorded) return { id, ...settle<WriteReply>(head.recorded).outcome };
          if (!head.view) throw notFound(id);
          base = { version: head.view.version, document: head.view.document! };
          fresh = true;
        }
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
          change = await compute(base.document);
          json = checkDocument(change.document, this.config);
        } catch (err) {
          if (err instanceof AppError && !fresh) {
            base = undefined;
            continue;
          }
          throw err;
        }
        const reply = parseReply(
          await runScript(this.redis, "update-context", [k.meta, k.seq, k.snapshots, k.feed, opKey], [
            options.opId ?? "",
            fingerprint,
            base.version,
            options.expectedVersion ?? "",
            json,
            kind,
            JSON.stringify(change.paths),
            JSON.stringify(change.patch),
            options.actor,
            options.reason ?? "",
            new Date().toISOString(),
            this.config.historyLimit,
            this.config.feedRetention,
            this.config.opIdTtlSeconds,
            this.keys.changesChannel,
            id,
          ]),
        );
        if ("retry" in reply) {
          base = undefined;
          fresh = false;
          continue;
        }
        const { outcome, replayed } = settle<WriteReply>(reply);
        if (replayed) return { id, ...outcome };
        const document = change.document as JsonObject;
        this.cache.set(id, outcome.version, document, json.length);
        return { id, ...outcome, document };
      }
      throw new Error(`write to context ${id} kept losing the race after ${MAX_WRITE_ATTEMPTS} attempts`);
    });
  }

  /**
   * One round trip for a context's head, with its document in "document" mode (sent over the
   * wire only when the cache does not hold the current version), and the reply recorded under
   * `opKey` if its fingerprint is given.
   */
  private async readHead(
    id: string,
    mode: "document" | "head",
    fingerprint: string,
    opKey = this.keys.op(id, ""),
  ): Promise<{ view: ContextView | null; recorded: ScriptReply | null }> {
    const k = this.keys.context(id);
    const cached = mode === "document" ? this.cache.get(id) : undefined;
    const known = mode === "head" ? "-" : (cached?.version ?? "");
    const [version, seq, createdAt, updatedAt, updatedBy, json, recorded] = (await runScript(
      this.redis,
      "read-context",
      [k.meta, k.seq, opKey],
      [known, fingerprint],
    )) as [number | null, number, string, string, string, string | null, string | null];
    const recordedReply = recorded ? parseReply(recorded) : null;
    if (version === null) return { view: null, recorded: recordedReply };
    let document: JsonObject | undefined;
    if (json !== null) {
      document = JSON.parse(json) as JsonObject;
      this.cache.set(id, version, document, json.length);
    } else if (cached) {
      document = cached.document;
    }
    return { view: { id, version, seq, createdAt, updatedAt, updatedBy, document }, recorded: recordedReply };
  }

  /** Resolves once every write this process has started has settled. */
  async drain(): Promise<void> {
    while (this.writeQueues.size > 0) await Promise.all(this.writeQueues.values());
  }

  /** Runs `task` after every earlier task for the same context in this process has settled. */
  private serialized<T>(id: string, task: () => Promise<T>): Promise<T> {
    const previous = this.writeQueues.get(id) ?? Promise.resolve();
    const result = previous.then(task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.writeQueues.set(id, tail);
    void tail.then(() => {
      if (this.writeQueues.get(id) === tail) this.writeQueues.delete(id);
    });
    return result;
  }
}

function toChangeEntry(contextId: string, entryId: string, fields: string[]): ChangeEntry {
  const f: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  return {
    contextId,
    seq: Number(entryId.split("-")[0]),
    version: Number(f.version),
    kind: f.kind!,
    paths: JSON.parse(f.paths ?? "[]") as string[],
    patch: JSON.parse(f.patch ?? "[]") as PatchOperation[],
    actor: f.actor ?? "",
    reason: f.reason ? f.reason : null,
    at: f.at!,
  };
}
