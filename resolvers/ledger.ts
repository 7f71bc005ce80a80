import { AppError, ErrorCode, LEDGER_REFUSALS } from "../src/errors.js";
import type { LedgerOperation, RefusalNotice } from "../src/feed/refusal-notices.js";
import type { AllocateRequest, PageRequest } from "../src/store/ledger.js";
import { parseAllocationId, type Allocation, type Amount, type AllocationStatus, type Budget } from "../src/model/allocation.js";
import type { Lock } from "../src/model/lock.js";
import type { RequestContext } from "./request-context.js";
import { inRange } from "./arguments.js";

interface LedgerArgs {
  readonly opId?: string | null;
  readonly reason?: string | null;
}

function options(args: LedgerArgs, ctx: RequestContext) {
  return { actor: ctx.principal.name, opId: args.opId, reason: args.reason };
}

export function allocation(args: { id: string }, ctx: RequestContext): Promise<Allocation | null> {
  return ctx.reads.allocation(ctx.ledger, args.id);
}

/** The parent, read with the other parents of the response's level (a DataLoader); null when there is none or retention pruned it. */
export async function parent(allocation: Allocation, ctx: RequestContext): Promise<Allocation | null> {
  return allocation.parentId === null ? null : ctx.reads.allocation(ctx.ledger, allocation.parentId);
}

/** Page size of the allocation connections when `first` is not given, and its bounds. */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

const CURSOR = /^alloc:(\d{1,15})$/;

/** The opaque cursor of the position right after allocation number `n`. */
export function cursorOf(n: number): string {
  return Buffer.from(`alloc:${n}`).toString("base64url");
}

/** The allocation number a cursor stands for; VALIDATION_FAILED (path `after`) when it is not a cursor. */
function numberOf(cursor: string): number {
  const match = CURSOR.exec(Buffer.from(cursor, "base64url").toString("latin1"));
  if (!match || cursorOf(Number(match[1])) !== cursor) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, "after is not a cursor of this connection (pass a cursor or endCursor it returned)", { path: "after" });
  }
  return Number(match[1]);
}

/** What an AllocationConnection's fields read: one page request (LedgerStore.allocationPages). */
export interface AllocationConnectionSource {
  readonly request: PageRequest;
}

export interface ConnectionArgs {
  readonly first?: number | null;
  readonly after?: string | null;
  readonly status?: AllocationStatus | null;
}

function connection(request: Omit<PageRequest, "first" | "after">, args: ConnectionArgs): AllocationConnectionSource {
  const first = inRange(args.first ?? DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE, "first");
  const after = args.after == null ? null : numberOf(args.after);
  return { request: { ...request, first, after } };
}

/** A context's allocations, oldest first, a page at a time from the read index of the filter. */
export function allocations(
  contextId: string,
  args: ConnectionArgs & { tier?: number | null; holder?: string | null },
  _ctx: RequestContext,
): AllocationConnectionSource {
  return connection(
    { contextId, ...(args.status != null && { status: args.status }), ...(args.tier != null && { tier: args.tier }), ...(args.holder != null && { holder: args.holder }) },
    args,
  );
}

/** An allocation's children, oldest first, a page at a time (read with the other pages of the response's level). */
export function children(allocation: Allocation, args: ConnectionArgs, _ctx: RequestContext): AllocationConnectionSource {
  const n = allocation.id.slice(allocation.contextId.length + 1);
  return connection({ contextId: allocation.contextId, parent: n, ...(args.status != null && { status: args.status }) }, args);
}

export async function edges(source: AllocationConnectionSource, ctx: RequestContext): Promise<{ cursor: string; node: Allocation }[]> {
  const page = await ctx.reads.page(ctx.ledger, source.request, true);
  return page.allocations.map((node) => ({ cursor: cursorOf(Number(node.id.slice(node.contextId.length + 1))), node }));
}

export async function pageInfo(source: AllocationConnectionSource, ctx: RequestContext): Promise<{ hasNextPage: boolean; endCursor: string | null }> {
  const page = await ctx.reads.page(ctx.ledger, source.request, false);
  return { hasNextPage: page.hasNextPage, endCursor: page.endCursor === null ? null : cursorOf(page.endCursor) };
}

export function totalCount(source: AllocationConnectionSource, ctx: RequestContext): Promise<number> {
  const { first: _first, after: _after, ...index } = source.request;
  return ctx.reads.count(ctx.ledger, index);
}

export function activeAllocations(contextId: string, ctx: RequestContext): Promise<number> {
  return ctx.ledger.activeAllocations(contextId);
}

export function heldLocks(contextId: string, ctx: RequestContext): Promise<number> {
  return ctx.ledger.heldLocks(contextId);
}

export function budget(contextId: string, ctx: RequestContext): Promise<Budget> {
  return ctx.ledger.budget(contextId);
}

export async function locks(contextId: string, ctx: RequestContext): Promise<readonly Lock[]> {
  return ctx.reads.chargeEach(await ctx.ledger.locks(contextId), "locks");
}

/** What a refusal notice says about the call besides the refusal itself. */
interface RefusedCall {
  readonly operation: LedgerOperation;
  readonly contextId?: string;
  readonly allocationId?: string;
  readonly parentId?: string | null;
  /** What the call asked for; an INSUFFICIENT_RESOURCES refusal's own `requested` (a profile's amounts included) wins. */
  readonly requested?: readonly Amount[] | null;
}

/** What could be had, from a refusal's details: INSUFFICIENT_RESOURCES's `available`, USAGE_EXCEEDED's `kind` and `remaining`. */
function availableOf(err: AppError): readonly Amount[] | null {
  const { available, kind, remaining } = err.details;
  if (Array.isArray(available)) return available as Amount[];
  return typeof kind === "string" && typeof remaining === "number" ? [{ kind, amount: remaining }] : null;
}

/**
 * Runs a ledger mutation; when the ledger refuses it (LEDGER_REFUSALS), publishes a notice for
 * ledgerRefusals subscribers on every instance without waiting for it, and rethrows the refusal.
 */
async function noticingRefusals<T>(call: RefusedCall, ctx: RequestContext, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof AppError && LEDGER_REFUSALS.has(err.code)) {
      const notice: RefusalNotice = {
        // The store parsed the allocation id before Redis could refuse the call.
        contextId: call.contextId ?? parseAllocationId(call.allocationId!).contextId,
        at: new Date().toISOString(),
        actor: ctx.principal.name,
        operation: call.operation,
        code: err.code,
        message: err.message,
        allocationId: call.allocationId ?? null,
        parentId: call.parentId ?? null,
        requested: Array.isArray(err.details.requested) ? (err.details.requested as Amount[]) : (call.requested ?? null),
        available: availableOf(err),
      };
      ctx.feed.refusals.publish(notice);
    }
    throw err;
  }
}

export function allocate(args: { contextId: string } & AllocateRequest & LedgerArgs, ctx: RequestContext): Promise<Allocation> {
  const call = { operation: "allocate", contextId: args.contextId, parentId: args.parentId, requested: args.request } as const;
  return noticingRefusals(call, ctx, () => ctx.ledger.allocate(args.contextId, args, options(args, ctx)));
}

export function reportUsage(
  args: { allocationId: string; usage: readonly Amount[] } & LedgerArgs,
  ctx: RequestContext,
): Promise<Allocation> {
  const call = { operation: "reportUsage", allocationId: args.allocationId, requested: args.usage } as const;
  return noticingRefusals(call, ctx, () => ctx.ledger.reportUsage(args.allocationId, args.usage, options(args, ctx)));
}

export function release(
  args: { allocationId: string; usage?: readonly Amount[] | null } & LedgerArgs,
  ctx: RequestContext,
): Promise<Allocation> {
  const call = { operation: "release", allocationId: args.allocationId, requested: args.usage } as const;
  return noticingRefusals(call, ctx, () => ctx.ledger.release(args.allocationId, args.usage ?? null, options(args, ctx)));
}

export function renewAllocation(args: { allocationId: string; leaseMs: number } & LedgerArgs, ctx: RequestContext): Promise<Allocation> {
  const call = { operation: "renewAllocation", allocationId: args.allocationId } as const;
  return noticingRefusals(call, ctx, () => ctx.ledger.renew(args.allocationId, args.leaseMs, options(args, ctx)));
}

export function acquireLock(
  args: { contextId: string; name: string; holder: string; leaseMs: number } & LedgerArgs,
  ctx: RequestContext,
): Promise<Lock> {
  return ctx.ledger.acquireLock(args.contextId, args.name, args.holder, args.leaseMs, options(args, ctx));
}

export function renewLock(
  args: { contextId: string; name: string; token: number; leaseMs: number } & LedgerArgs,
  ctx: RequestContext,
): Promise<Lock> {
  return ctx.ledger.renewLock(args.contextId, args.name, args.token, args.leaseMs, options(args, ctx));
}

export function releaseLock(args: { contextId: string; name: string; token: number } & LedgerArgs, ctx: RequestContext): Promise<Lock> {
  return ctx.ledger.releaseLock(args.contextId, args.name, args.token, options(args, ctx));
}
