import type { AllocateRequest } from "../src/store/ledger.js";
import type { Allocation, Amount, AllocationStatus, Budget } from "../src/model/allocation.js";
import type { Lock } from "../src/model/lock.js";
import type { RequestContext } from "./request-context.js";
import { jsonSize } from "./response-reads.js";

interface LedgerArgs {
  readonly opId?: string | null;
  readonly reason?: string | null;
}

function options(args: LedgerArgs, ctx: RequestContext) {
  return { actor: ctx.principal.name, opId: args.opId, reason: args.reason };
}

/** An allocation by id, or null, counted against the response's bound. */
async function readAllocation(id: string, ctx: RequestContext): Promise<Allocation | null> {
  const found = await ctx.ledger.allocation(id);
  ctx.reads.charge(jsonSize(found), "allocations");
  return found;
}

export function allocation(args: { id: string }, ctx: RequestContext): Promise<Allocation | null> {
  return readAllocation(args.id, ctx);
}

export async function parent(allocation: Allocation, ctx: RequestContext): Promise<Allocation | null> {
  return allocation.parentId === null ? null : readAllocation(allocation.parentId, ctx);
}

/** Read with every allocation of the context, once per response (ResponseReads). */
export async function children(allocation: Allocation, ctx: RequestContext): Promise<readonly Allocation[]> {
  return ctx.reads.chargeEach(await ctx.reads.children(ctx.ledger, allocation), "allocations");
}

export function budget(contextId: string, ctx: RequestContext): Promise<Budget> {
  return ctx.ledger.budget(contextId);
}

export async function allocations(
  contextId: string,
  args: { status?: AllocationStatus | null; tier?: number | null },
  ctx: RequestContext,
): Promise<readonly Allocation[]> {
  const all = await ctx.reads.allocations(ctx.ledger, contextId);
  const { status, tier } = args;
  return ctx.reads.chargeEach(all.filter((a) => (status == null || a.status === status) && (tier == null || a.tier === tier)), "allocations");
}

export async function locks(contextId: string, ctx: RequestContext): Promise<readonly Lock[]> {
  return ctx.reads.chargeEach(await ctx.ledger.locks(contextId), "locks");
}

export function allocate(args: { contextId: string } & AllocateRequest & LedgerArgs, ctx: RequestContext): Promise<Allocation> {
  return ctx.ledger.allocate(args.contextId, args, options(args, ctx));
}

export function reportUsage(
  args: { allocationId: string; usage: readonly Amount[] } & LedgerArgs,
  ctx: RequestContext,
): Promise<Allocation> {
  return ctx.ledger.reportUsage(args.allocationId, args.usage, options(args, ctx));
}

export function release(
  args: { allocationId: string; usage?: readonly Amount[] | null } & LedgerArgs,
  ctx: RequestContext,
): Promise<Allocation> {
  return ctx.ledger.release(args.allocationId, args.usage ?? null, options(args, ctx));
}

export function renewAllocation(args: { allocationId: string; leaseMs: number } & LedgerArgs, ctx: RequestContext): Promise<Allocation> {
  return ctx.ledger.renew(args.allocationId, args.leaseMs, options(args, ctx));
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
