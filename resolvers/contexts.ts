import { mayAccess, scopeRanges } from "../src/security/auth.js";
import { AppError, ErrorCode } from "../src/errors.js";
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
}

function writeOptions(args: WriteArgs, ctx: RequestContext) {
  return { actor: ctx.principal.name, opId: args.opId, reason: args.reason, expectedVersion: args.expectedVersion, fence: args.fence };
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

/**
 * At most `limit` entries, and fewer when theirs would be more than HISTORY_READ_BYTES or than the
 * response may still carry: the caller continues after the last seq it got. The first entry is
 * always read, and refused (LIMIT_EXCEEDED) if the response cannot carry it.
 */
export async function history(
  view: ContextView,
  args: { afterSeq?: number | null; limit: number },
  ctx: RequestContext,
): Promise<ChangeEntry[]> {
  const limit = inRange(args.limit, 1, MAX_HISTORY_LIMIT, "limit");
  return ctx.reads.serially(async () => {
    const entries = await ctx.contexts.history(view.id, args.afterSeq ?? null, limit, Math.min(HISTORY_READ_BYTES, ctx.reads.remaining));
    ctx.reads.charge(entries.reduce((sum, entry) => sum + entry.bytes, 0), "history entries");
    return entries;
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

// --- activeAllocations stand-in (see schema/swarm-context.ts): replaced by helper A's at merge.
export function activeAllocations(view: ContextView, ctx: RequestContext): Promise<number> {
  return ctx.contexts.activeAllocations(view.id);
}
