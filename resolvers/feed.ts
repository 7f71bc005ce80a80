import { AppError, ErrorCode } from "../src/errors.js";
import type { ChangeBatch, Cursor } from "../src/feed/change-pipeline.js";
import type { LedgerRefusal } from "../src/feed/refusal-notices.js";
import type { JsonObject } from "../src/json/types.js";
import { CONTEXT_ID } from "../src/model/identifiers.js";
import { inRange, segmentsOf } from "./arguments.js";
import { slice } from "./contexts.js";
import type { RequestContext } from "./request-context.js";

export const DEFAULT_BATCH_SIZE = 100;
export const MAX_BATCH_SIZE = 1000;
export const MAX_BATCH_WAIT_MS = 60_000;
export const MAX_RATE = 1000;
/** Longest list argument (contextIds, paths, actors, excludeActors, after). */
export const MAX_LIST = 1000;
/** The kinds that can change a slice's value. */
const DOCUMENT_KINDS = ["CREATED", "UPDATED", "ROLLED_BACK", "DELETED"];

export interface ContextChangesArgs {
  readonly contextIds?: readonly string[] | null;
  readonly idPrefix?: string | null;
  readonly paths?: readonly string[] | null;
  readonly kinds?: readonly string[] | null;
  readonly actors?: readonly string[] | null;
  readonly excludeActors?: readonly string[] | null;
  readonly after?: readonly Cursor[] | null;
  readonly batch?: { readonly maxSize?: number | null; readonly maxWaitMs?: number | null } | null;
  readonly maxBatchesPerSecond?: number | null;
}

/** The latest value of a watched slice. */
export interface SliceUpdate {
  readonly version: number;
  readonly seq: number;
  readonly slice: JsonObject;
}

function checkIds(ids: readonly string[], path: string): void {
  for (const id of ids) {
    if (!CONTEXT_ID.test(id)) throw new AppError(ErrorCode.VALIDATION_FAILED, `${JSON.stringify(id)} is not a context id`, { path });
  }
}

function checkRate(rate: number | null | undefined, path: string): number | null {
  if (rate == null) return null;
  if (!(rate > 0 && rate <= MAX_RATE)) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, `${path} must be more than 0 and at most ${MAX_RATE}`, { path });
  }
  return rate;
}

/** Subscribes to the change feed. Throws VALIDATION_FAILED for malformed arguments. */
export function contextChanges(args: ContextChangesArgs, ctx: RequestContext): Promise<AsyncIterable<ChangeBatch>> {
  const contextIds = args.contextIds ?? null;
  if (contextIds) {
    inRange(contextIds.length, 1, MAX_LIST, "contextIds");
    checkIds(contextIds, "contextIds");
  }
  for (const name of ["paths", "actors", "excludeActors", "after"] as const) inRange(args[name]?.length ?? 0, 0, MAX_LIST, name);
  const after = args.after ?? [];
  checkIds(
    after.map((c) => c.contextId),
    "after",
  );
  for (const c of after) inRange(c.seq, 0, Number.MAX_SAFE_INTEGER, "after.seq");
  if (new Set(after.map((c) => c.contextId)).size !== after.length) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, "after names a context more than once", { path: "after" });
  }
  for (const path of args.paths ?? []) segmentsOf(path);
  return ctx.feed.subscribe({
    filter: {
      contextIds,
      idPrefix: args.idPrefix ?? null,
      paths: args.paths ?? null,
      kinds: args.kinds ?? null,
      actors: args.actors ?? null,
      excludeActors: args.excludeActors ?? null,
      // Pipelines are shared by equal options only, so subscribers of different scopes never share one.
      scope: ctx.principal.role === "admin" ? null : ctx.principal.scope,
    },
    after,
    maxSize: inRange(args.batch?.maxSize ?? DEFAULT_BATCH_SIZE, 1, MAX_BATCH_SIZE, "batch.maxSize"),
    maxWaitMs: inRange(args.batch?.maxWaitMs ?? 0, 0, MAX_BATCH_WAIT_MS, "batch.maxWaitMs"),
    maxBatchesPerSecond: checkRate(args.maxBatchesPerSecond, "maxBatchesPerSecond"),
  });
}

/** One value of the feed as the client sees it: a batch, or the resumable end of a subscriber (see EndReason). */
export function deliver(batch: ChangeBatch): ChangeBatch {
  if (batch.ended?.reason === "behind") {
    throw new AppError(
      ErrorCode.RESYNC_REQUIRED,
      "this subscriber fell too far behind and was ended; subscribe again with `after` set to extensions.after",
      { after: batch.ended.after },
    );
  }
  if (batch.ended?.reason === "unreadable") {
    throw new AppError(
      ErrorCode.RESYNC_REQUIRED,
      "a change of this feed could not be read and is skipped: re-read the contexts of the resync entries, then subscribe again with `after` set to extensions.after",
      { after: batch.ended.after },
    );
  }
  if (batch.ended?.reason === "failed") {
    throw new AppError(
      ErrorCode.UNAVAILABLE,
      "this feed could not be read (the cause is logged on the server); subscribe again with `after` set to extensions.after",
      { after: batch.ended.after },
    );
  }
  if (batch.ended?.reason === "shutdown") {
    throw new AppError(
      ErrorCode.UNAVAILABLE,
      "this server is shutting down; subscribe again (to another instance) with `after` set to extensions.after",
      { after: batch.ended.after },
    );
  }
  return batch;
}

interface SliceRead {
  readonly update: SliceUpdate;
  /** The slice serialized, to tell whether it changed. */
  readonly json: string;
}

const readsAfter = new WeakMap<ChangeBatch, Map<string, Promise<SliceRead>>>();

/**
 * The watched paths' values now, then again after every change to one of them (only the latest
 * value when over `maxUpdatesPerSecond`). Throws VALIDATION_FAILED for malformed arguments. A
 * refusal met while streaming (NOT_FOUND when the context does not exist or is deleted,
 * RESYNC_REQUIRED when the subscriber falls too far behind) is yielded as the last value, for
 * the field's resolver to raise: errors thrown by the stream itself would reach the client masked.
 */
export async function watchSlice(
  args: { id: string; paths: readonly string[]; maxUpdatesPerSecond?: number | null },
  ctx: RequestContext,
): Promise<AsyncGenerator<SliceUpdate | AppError>> {
  inRange(args.paths.length, 1, MAX_LIST, "paths");
  for (const path of args.paths) segmentsOf(path);
  // Subscribe first, read second: a change between the two is then seen, never missed.
  const changes = await contextChanges(
    {
      contextIds: [args.id],
      paths: args.paths,
      kinds: DOCUMENT_KINDS,
      batch: { maxSize: MAX_BATCH_SIZE },
      maxBatchesPerSecond: args.maxUpdatesPerSecond,
    },
    ctx,
  );
  const read = async (): Promise<SliceRead> => {
    const view = await ctx.contexts.get(args.id);
    if (!view) throw new AppError(ErrorCode.NOT_FOUND, `context ${args.id} does not exist`, { id: args.id });
    const update = { version: view.version, seq: view.seq, slice: await slice(view, args, ctx) };
    return { update, json: JSON.stringify(update.slice) };
  };
  // Watchers with the same arguments share a pipeline, hence each batch object: the read after
  // it is made once for all of them, and so is the update they are sent.
  const readAfter = (batch: ChangeBatch): Promise<SliceRead> => {
    const key = JSON.stringify(args.paths);
    let reads = readsAfter.get(batch);
    if (!reads) readsAfter.set(batch, (reads = new Map()));
    let shared = reads.get(key);
    if (!shared) reads.set(key, (shared = read()));
    return shared;
  };
  let last = "";
  return (async function* () {
    try {
      const first = await read();
      last = first.json;
      yield first.update;
      for await (const batch of changes) {
        deliver(batch);
        const { update, json } = await readAfter(batch);
        if (json === last) continue;
        last = json;
        yield update;
      }
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      yield err;
    } finally {
      await changes[Symbol.asyncIterator]().return?.();
    }
  })();
}

/** One value of watchSlice or ledgerRefusals as the client sees it: the value, or the refusal that ends the stream. */
export function deliverValue<T>(value: T | AppError): T {
  if (value instanceof AppError) throw value;
  return value;
}

/**
 * The live refusal notices of context `contextId` (see RefusalNotices): those published from now
 * on, by any instance. Throws VALIDATION_FAILED when it is not a context id.
 */
export function ledgerRefusals(args: { contextId: string }, ctx: RequestContext): AsyncIterable<LedgerRefusal | AppError> {
  checkIds([args.contextId], "contextId");
  return ctx.feed.refusals.subscribe(args.contextId);
}
