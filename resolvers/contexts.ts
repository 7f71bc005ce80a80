import { mayAccess, scopeRanges } from "../src/security/auth.js";
import { AppError, checkAll, ErrorCode } from "../src/errors.js";
import { matchesChange, type ChangeFilter } from "../src/feed/change-filter.js";
import { diffDocuments } from "../src/json/diff.js";
import type { PatchOperation } from "../src/json/patch.js";
import { valueAt } from "../src/json/pointer.js";
import type { JsonObject, JsonValue } from "../src/json/types.js";
import type { ChangeEntry } from "../src/model/change.js";
import type { ContextOrder, ContextView, DeletedContext, Fence, ListQuery } from "../src/store/contexts.js";
import { inRange, segmentsOf } from "./arguments.js";
import type { RequestContext } from "./request-context.js";
import { jsonSize } from "./response-reads.js";

export const MAX_PAGE_SIZE = 500;
export const MAX_HISTORY_LIMIT = 1000;
export const DEFAULT_HISTORY_LIMIT = 100;
/** Longest kinds, actors or paths list of a history read. */
export const MAX_FILTER_LIST = 1000;
/**
 * Bytes of feed entries one `history` field reads (past its first entry): one read is one Redis
 * script, which holds Redis for about 5 ms per MiB it returns.
 */
export const HISTORY_READ_BYTES = 4 * 1024 * 1024;

interface WriteArgs {
  readonly opId?: string | null;
  readonly reason?: string | null;
  readonly expectedVersion?: number | null;
  readonly fence?: Fence | null;
  readonly dryRun?: boolean | null;
}

function writeOptions(args: WriteArgs, ctx: RequestContext) {
  return {
    actor: ctx.principal.name,
    opId: args.opId,
    reason: args.reason,
    expectedVersion: args.expectedVersion,
    fence: args.fence,
    dryRun: args.dryRun,
  };
}

export function context(args: { id: string }, ctx: RequestContext): Promise<ContextView | null> {
  return ctx.contexts.get(args.id);
}

/** A page of the contexts list; `totalCount` is counted only when asked for. */
export interface ContextConnection {
  readonly edges: { cursor: string; node: ContextView }[];
  readonly pageInfo: { hasNextPage: boolean; endCursor: string | null };
  readonly query: ListQuery;
}

export async function contexts(
  args: { first: number; after?: string | null; idPrefix?: string | null; updatedAfter?: string | null; orderBy?: ContextOrder | null },
  ctx: RequestContext,
): Promise<ContextConnection> {
  const first = inRange(args.first, 1, MAX_PAGE_SIZE, "first");
  const order = args.orderBy ?? "ID";
  // Cursors are sealed (ListCursors): a scoped caller's page may end on an id outside its scope.
  const cursors = await ctx.contexts.listCursors();
  const after = args.after == null ? null : cursors.open(args.after);
  if (args.after != null && (after === null || (after.at !== undefined) !== (order === "UPDATED_AT_DESC"))) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, "after is not a cursor this server gave for this order (or it is from before a reinitialize)", {
      path: "after",
    });
  }
  const query: ListQuery = {
    idPrefix: args.idPrefix ?? null,
    updatedAfter: args.updatedAfter == null ? null : Date.parse(args.updatedAfter),
    visible: (id) => mayAccess(ctx.principal, id),
  };
  const page = await ctx.contexts.list(first, after, order, query);
  const edges = page.contexts.map((node, i) => ({ cursor: cursors.seal(page.positions[i]!), node }));
  const endCursor = page.resumeAfter === null ? null : cursors.seal(page.resumeAfter);
  return { edges, pageInfo: { hasNextPage: page.hasNextPage, endCursor }, query };
}

/** How many contexts the list's filters and the caller's scope select, or null when that cannot be counted within bounds (ContextStore.count). */
export function contextsTotal(connection: ContextConnection, ctx: RequestContext): Promise<number | null> {
  return ctx.contexts.count(connection.query, scopeRanges(ctx.principal));
}

/**
 * The document of the version this view stands for (loaded lazily for lists and replays, one
 * read at a time: see ResponseReads).
 */
function documentOf(view: ContextView, ctx: RequestContext): JsonObject | Promise<JsonObject> {
  return view.document ?? ctx.reads.serially(() => ctx.contexts.documentAt(view.id, view.version));
}

export async function document(view: ContextView, ctx: RequestContext): Promise<JsonObject> {
  const doc = await documentOf(view, ctx);
  ctx.reads.charge(jsonSize(doc), "document");
  return doc;
}

export async function value(view: ContextView, args: { path: string }, ctx: RequestContext): Promise<JsonValue> {
  const segments = segmentsOf(args.path);
  const found = valueAt(await documentOf(view, ctx), segments) ?? null;
  ctx.reads.charge(jsonSize(found), "values");
  return found;
}

export async function slice(view: ContextView, args: { paths: readonly string[] }, ctx: RequestContext): Promise<JsonObject> {
  const parsed = args.paths.map((path) => [path, segmentsOf(path)] as const);
  const doc = await documentOf(view, ctx);
  const values = parsed.map(([path, segments]) => [path, valueAt(doc, segments) ?? null] as const);
  ctx.reads.chargeEach(values.map(([, found]) => found), "values");
  return Object.fromEntries(values);
}

export async function snapshot(view: ContextView, args: { version: number }, ctx: RequestContext): Promise<JsonValue> {
  return ctx.reads.serially(async () => {
    const found = await ctx.contexts.snapshot(view.id, args.version);
    ctx.reads.charge(jsonSize(found), "snapshot");
    return found;
  });
}

/** How many entries a filtered history read may read per entry it may return. */
export const HISTORY_SCAN_FACTOR = 10;

export interface HistoryArgs {
  readonly afterSeq?: number | null;
  readonly limit?: number | null;
  readonly beforeSeq?: number | null;
  readonly last?: number | null;
  readonly kinds?: readonly string[] | null;
  readonly actors?: readonly string[] | null;
  readonly paths?: readonly string[] | null;
}

export interface HistoryPageResult {
  readonly changes: ChangeEntry[];
  readonly scannedTo: number | null;
  readonly hasMore: boolean;
}

/**
 * A page of the change feed: forward (afterSeq, limit; default) or backward (beforeSeq, last),
 * filtered by kinds, actors and paths as the subscription filters. It reads at most
 * HISTORY_READ_BYTES (or what the response may still carry) and, with a filter, at most
 * HISTORY_SCAN_FACTOR x the page size entries, matching or not; `scannedTo` says where it
 * stopped. The first entry is always read, and refused (LIMIT_EXCEEDED) if the response cannot
 * carry it. Throws VALIDATION_FAILED listing every bad argument.
 */
export async function historyPage(view: ContextView, args: HistoryArgs, ctx: RequestContext): Promise<HistoryPageResult> {
  const backward = args.beforeSeq != null || args.last != null;
  const size = (backward ? args.last : args.limit) ?? DEFAULT_HISTORY_LIMIT;
  checkAll(
    () => {
      if (backward && (args.afterSeq != null || args.limit != null)) {
        throw new AppError(ErrorCode.VALIDATION_FAILED, "give afterSeq and limit (oldest first) or beforeSeq and last (newest first), not both", {
          path: args.afterSeq != null ? "afterSeq" : "limit",
        });
      }
    },
    () => inRange(size, 1, MAX_HISTORY_LIMIT, backward ? "last" : "limit"),
    () => args.beforeSeq != null && inRange(args.beforeSeq, 1, Number.MAX_SAFE_INTEGER, "beforeSeq"),
    () => inRange(args.kinds?.length ?? 0, 0, MAX_FILTER_LIST, "kinds"),
    () => inRange(args.actors?.length ?? 0, 0, MAX_FILTER_LIST, "actors"),
    () => inRange(args.paths?.length ?? 0, 0, MAX_FILTER_LIST, "paths"),
    ...(args.paths ?? []).slice(0, MAX_FILTER_LIST).map((path) => () => segmentsOf(path)),
  );
  const filtered = args.kinds != null || args.actors != null || args.paths != null;
  const filter: ChangeFilter = {
    contextIds: null,
    idPrefix: null,
    kinds: args.kinds ?? null,
    actors: args.actors ?? null,
    paths: args.paths ?? null,
    excludeActors: null,
    scope: null,
  };
  return ctx.reads.serially(async () => {
    const page = await ctx.contexts.history(view.id, {
      direction: backward ? "backward" : "forward",
      from: (backward ? args.beforeSeq : args.afterSeq) ?? null,
      limit: size,
      scanLimit: filtered ? HISTORY_SCAN_FACTOR * size : size,
      maxBytes: Math.min(HISTORY_READ_BYTES, ctx.reads.remaining),
      matches: filtered ? (entry) => matchesChange(filter, entry) : null,
    });
    ctx.reads.charge(page.entries.reduce((sum, entry) => sum + entry.bytes, 0), "history entries");
    return { changes: page.entries, scannedTo: page.scannedTo, hasMore: page.hasMore };
  });
}

/** The changes of historyPage. */
export async function history(view: ContextView, args: HistoryArgs, ctx: RequestContext): Promise<ChangeEntry[]> {
  return (await historyPage(view, args, ctx)).changes;
}

/**
 * The JSON Patch from the retained document of `fromVersion` to that of `toVersion` (src/json/diff.ts).
 * Throws NOT_FOUND (with oldestRetainedVersion) when either is not retained.
 */
export async function diff(
  view: ContextView,
  args: { fromVersion: number; toVersion: number },
  ctx: RequestContext,
): Promise<readonly PatchOperation[]> {
  return ctx.reads.serially(async () => {
    const [from, to] = await Promise.all([ctx.contexts.snapshot(view.id, args.fromVersion), ctx.contexts.snapshot(view.id, args.toVersion)]);
    const ops = diffDocuments(from, to).patch;
    ctx.reads.charge(jsonSize(ops), "diff");
    return ops;
  });
}

export function createContext(
  args: { id?: string | null; document: JsonValue } & WriteArgs,
  ctx: RequestContext,
): Promise<ContextView> {
  return ctx.contexts.create(args.id ?? null, args.document, writeOptions(args, ctx));
}

export function patchContext(
  args: { id: string; patch: readonly PatchOperation[] } & WriteArgs,
  ctx: RequestContext,
): Promise<ContextView> {
  return ctx.contexts.patch(args.id, args.patch, writeOptions(args, ctx));
}

export function mergeContext(args: { id: string; merge: JsonValue } & WriteArgs, ctx: RequestContext): Promise<ContextView> {
  return ctx.contexts.merge(args.id, args.merge, writeOptions(args, ctx));
}

export function rollbackContext(
  args: { id: string; toVersion: number } & WriteArgs,
  ctx: RequestContext,
): Promise<ContextView> {
  return ctx.contexts.rollback(args.id, args.toVersion, writeOptions(args, ctx));
}

export function deleteContext(args: { id: string } & WriteArgs, ctx: RequestContext): Promise<DeletedContext> {
  return ctx.contexts.delete(args.id, writeOptions(args, ctx));
}

