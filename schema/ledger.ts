import type { ArgBuilder } from "@pothos/core";
import * as resolve from "../resolvers/ledger.js";
import { HOLDER_MAX_LENGTH, LOCK_NAME } from "../src/model/identifiers.js";
import type { Allocation, Amount, Budget } from "../src/model/allocation.js";
import { builder } from "./builder.js";
import { AllocationRef, LockRef, SwarmContextRef } from "./refs.js";
import { PageInfo } from "./swarm-context.js";

export const ResourceAmount = builder.objectRef<Amount>("ResourceAmount").implement({
  description: "An amount of one resource kind (kinds are data, e.g. credits, tokens, durationMs).",
  fields: (t) => ({ kind: t.exposeString("kind"), amount: t.exposeFloat("amount", { description: "A non-negative integer." }) }),
});

const ResourceAmountInput = builder.inputType("ResourceAmountInput", {
  fields: (t) => ({
    kind: t.string({ required: true, description: "Matches ^[A-Za-z][A-Za-z0-9_.:-]{0,63}$." }),
    amount: t.float({ required: true, description: "A non-negative integer (up to 2^53 - 1)." }),
  }),
});

const AllocationStatus = builder.enumType("AllocationStatus", {
  values: {
    ACTIVE: { description: "Granted and not ended." },
    RELEASED: { description: "Ended by release (of it or an ancestor)." },
    EXPIRED: { description: "Ended because its lease (or an ancestor's) ran out." },
  } as const,
});

const AllocationMode = builder.enumType("AllocationMode", {
  values: {
    EXACT: { description: "All of the request or nothing." },
    UP_TO: { description: "min(request, allowed) per kind; refused only if every kind would get 0." },
  } as const,
});

const AllocationEdge = builder.objectRef<{ cursor: string; node: Allocation }>("AllocationEdge").implement({
  fields: (t) => ({
    cursor: t.exposeString("cursor", { description: "Pass as `after` to continue after this allocation." }),
    node: t.field({ type: AllocationRef, resolve: (e) => e.node }),
  }),
});

const AllocationConnection = builder.objectRef<resolve.AllocationConnectionSource>("AllocationConnection").implement({
  description:
    "A page of allocations, oldest (lowest number) first. A walk with `after` never returns an allocation twice, and never skips one that existed and matched the filter for the whole walk; one whose status changes during the walk may be seen or not.",
  fields: (t) => ({
    edges: t.field({ type: [AllocationEdge], resolve: (c, _args, ctx) => resolve.edges(c, ctx) }),
    pageInfo: t.field({ type: PageInfo, resolve: (c, _args, ctx) => resolve.pageInfo(c, ctx) }),
    totalCount: t.int({
      description: "How many allocations match the filter (all pages), as of this read.",
      resolve: (c, _args, ctx) => resolve.totalCount(c, ctx),
    }),
  }),
});

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;
const connectionArgs = (t: { arg: ArgBuilder<Types> }) => ({
  first: t.arg.int({
    defaultValue: resolve.DEFAULT_PAGE_SIZE,
    description: `Page size, 1 to ${resolve.MAX_PAGE_SIZE} (VALIDATION_FAILED otherwise).`,
  }),
  after: t.arg.string({ description: "A cursor or endCursor from this connection: the page starts after it." }),
  status: t.arg({ type: AllocationStatus, description: "Only allocations of this status." }),
});

AllocationRef.implement({
  description:
    "A grant carved from the budget (tier 2) or from another allocation (tier 3 and deeper). Per kind, consumed + reserved <= granted always holds.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "`<contextId>#<n>`." }),
    contextId: t.exposeID("contextId"),
    parentId: t.exposeID("parentId", { nullable: true, description: "Null when carved from the budget." }),
    tier: t.exposeInt("tier", { description: "2 for allocations from the budget (tier 1), +1 per level." }),
    path: t.exposeIDList("path", { description: "Ancestor allocation ids, outermost first." }),
    status: t.field({ type: AllocationStatus, resolve: (a) => a.status }),
    requested: t.field({ type: [ResourceAmount], resolve: (a) => [...a.requested] }),
    granted: t.field({ type: [ResourceAmount], resolve: (a) => [...a.granted] }),
    consumed: t.field({
      type: [ResourceAmount],
      description: "Usage reported, plus what ended descendants consumed.",
      resolve: (a) => [...a.consumed],
    }),
    reserved: t.field({ type: [ResourceAmount], description: "Granted to active children.", resolve: (a) => [...a.reserved] }),
    available: t.field({ type: [ResourceAmount], description: "granted - consumed - reserved.", resolve: (a) => [...a.available] }),
    holder: t.exposeString("holder", { nullable: true }),
    purpose: t.exposeString("purpose", { nullable: true }),
    createdAt: t.field({ type: "DateTime", resolve: (a) => a.createdAt }),
    expiresAt: t.field({
      type: "DateTime",
      nullable: true,
      description:
        "When the lease runs out (null: no lease). From then on every operation treats the allocation as EXPIRED; `status` says so once the next accepted ledger or lock operation on the context, or the lease sweeper, writes the expiry.",
      resolve: (a) => a.expiresAt,
    }),
    endedAt: t.field({ type: "DateTime", nullable: true, resolve: (a) => a.endedAt }),
    parent: t.field({
      type: AllocationRef,
      nullable: true,
      description:
        "The allocation this one was carved from; null for tier 2, and once retention pruned the parent (parentId stays).",
      resolve: (a, _args, ctx) => resolve.parent(a, ctx),
    }),
    children: t.field({
      type: AllocationConnection,
      description:
        "The allocations carved from this one, active or ended (until retention prunes them), oldest first, a page at a time. Reads only the page.",
      args: connectionArgs(t),
      resolve: (a, args, ctx) => resolve.children(a, args, ctx),
    }),
  }),
});

LockRef.implement({
  description: "A named lock with a lease. `token` is a fencing token, strictly increasing per (context, name).",
  fields: (t) => ({
    name: t.exposeString("name"),
    holder: t.exposeString("holder"),
    token: t.exposeInt("token"),
    expiresAt: t.field({ type: "DateTime", resolve: (l) => l.expiresAt }),
  }),
});

const BudgetRef = builder.objectRef<Budget>("Budget").implement({
  description: "The swarm's root budget (tier 1): `resources.limits` and what the ledger holds of it.",
  fields: (t) => ({
    limits: t.field({ type: [ResourceAmount], resolve: (b) => [...b.limits] }),
    granted: t.field({ type: [ResourceAmount], description: "Held by active tier-2 allocations.", resolve: (b) => [...b.granted] }),
    consumed: t.field({ type: [ResourceAmount], description: "Consumed by ended allocations.", resolve: (b) => [...b.consumed] }),
    available: t.field({
      type: [ResourceAmount],
      description: "limits - granted - consumed, never below 0 (limits may be lowered below what is held).",
      resolve: (b) => [...b.available],
    }),
  }),
});

builder.objectFields(SwarmContextRef, (t) => ({
  budget: t.field({ type: BudgetRef, resolve: (c, _args, ctx) => resolve.budget(c.id, ctx) }),
  allocations: t.field({
    type: AllocationConnection,
    description:
      "Allocations of this swarm, active or ended (until retention prunes them, SWARM_ENDED_ALLOCATION_RETENTION_MS), oldest first, a page at a time; filters combine. Reads only the page.",
    args: {
      ...connectionArgs(t),
      tier: t.arg.int({ description: "Only allocations of this tier." }),
      holder: t.arg.string({ description: "Only allocations of this holder." }),
    },
    resolve: (c, args, ctx) => resolve.allocations(c.id, args, ctx),
  }),
  locks: t.field({ type: [LockRef], description: "Locks currently held.", resolve: (c, _args, ctx) => resolve.locks(c.id, ctx) }),
}));

// Ledger summary fields of SwarmContext (issue 14): cheap counts, no allocation or lock read.
builder.objectFields(SwarmContextRef, (t) => ({
  activeAllocations: t.int({
    description: "How many allocations are ACTIVE (one count, whatever their number).",
    resolve: (c, _args, ctx) => resolve.activeAllocations(c.id, ctx),
  }),
  heldLocks: t.int({
    description:
      "How many locks no operation has released: the held ones, plus any whose lease ran out that no lock operation on that name has cleaned up since (`locks` lists only the ones whose lease runs). One count, no lock read.",
    resolve: (c, _args, ctx) => resolve.heldLocks(c.id, ctx),
  }),
}));

builder.queryField("allocation", (t) =>
  t.field({
    type: AllocationRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => resolve.allocation({ id: String(args.id) }, ctx),
  }),
);

const lockNameRule = `Matches ${LOCK_NAME.source}.`;
const holderRule = `Who holds it: 1 to ${HOLDER_MAX_LENGTH} characters.`;

type MutationFieldBuilder = Parameters<Parameters<typeof builder.mutationFields>[0]>[0];
const ledgerArgs = (t: MutationFieldBuilder) => ({
  opId: t.arg.string({ description: "Idempotency key: a retry with the same opId returns the first outcome." }),
  reason: t.arg.string({ description: "Recorded on the change-feed entry." }),
});
const amounts = (list: readonly { kind: string; amount: number }[] | null | undefined) => list?.map((a) => ({ kind: a.kind, amount: a.amount }));

builder.mutationFields((t) => ({
  allocate: t.field({
    type: AllocationRef,
    description:
      "Carves an allocation from the budget or from `parentId`: at most policy.allocation.maxShare of the parent's available amount per kind, at most policy.allocation.maxDepth tiers. `profile` names policy.allocation.profiles; kinds in `request` override it. Lease: leaseMs, else the profile's, else policy.allocation.defaultLeaseMs, else none.",
    args: {
      contextId: t.arg.id({ required: true }),
      parentId: t.arg.id(),
      request: t.arg({ type: [ResourceAmountInput] }),
      profile: t.arg.string(),
      mode: t.arg({ type: AllocationMode, required: true }),
      leaseMs: t.arg.int(),
      holder: t.arg.string({ description: holderRule }),
      purpose: t.arg.string(),
      ...ledgerArgs(t),
    },
    resolve: (_root, args, ctx) =>
      resolve.allocate(
        { ...args, contextId: String(args.contextId), parentId: args.parentId == null ? null : String(args.parentId), request: amounts(args.request) },
        ctx,
      ),
  }),
  reportUsage: t.field({
    type: AllocationRef,
    description: "Adds to `consumed`; refused (USAGE_EXCEEDED) if it would exceed what the allocation may still spend.",
    args: { allocationId: t.arg.id({ required: true }), usage: t.arg({ type: [ResourceAmountInput], required: true }), ...ledgerArgs(t) },
    resolve: (_root, args, ctx) => resolve.reportUsage({ ...args, allocationId: String(args.allocationId), usage: amounts(args.usage)! }, ctx),
  }),
  release: t.field({
    type: AllocationRef,
    description:
      "Ends the allocation and every active descendant, after adding the final `usage`; consumption is charged up the chain and the unused rest returns to the parent.",
    args: { allocationId: t.arg.id({ required: true }), usage: t.arg({ type: [ResourceAmountInput] }), ...ledgerArgs(t) },
    resolve: (_root, args, ctx) => resolve.release({ ...args, allocationId: String(args.allocationId), usage: amounts(args.usage) }, ctx),
  }),
  renewAllocation: t.field({
    type: AllocationRef,
    description: "Sets the lease to end `leaseMs` from now.",
    args: { allocationId: t.arg.id({ required: true }), leaseMs: t.arg.int({ required: true }), ...ledgerArgs(t) },
    resolve: (_root, args, ctx) => resolve.renewAllocation({ ...args, allocationId: String(args.allocationId) }, ctx),
  }),
  acquireLock: t.field({
    type: LockRef,
    description: "Takes the lock for `leaseMs`, with a new fencing token; LOCK_HELD while another lease runs.",
    args: {
      contextId: t.arg.id({ required: true }),
      name: t.arg.string({ required: true, description: lockNameRule }),
      holder: t.arg.string({ required: true, description: holderRule }),
      leaseMs: t.arg.int({ required: true, description: "1 ms to 365 days." }),
      ...ledgerArgs(t),
    },
    resolve: (_root, args, ctx) => resolve.acquireLock({ ...args, contextId: String(args.contextId) }, ctx),
  }),
  renewLock: t.field({
    type: LockRef,
    description: "Extends the lease of the lock held with `token`; STALE_FENCE if it is not the current token or its lease ran out.",
    args: {
      contextId: t.arg.id({ required: true }),
      name: t.arg.string({ required: true, description: lockNameRule }),
      token: t.arg.int({ required: true }),
      leaseMs: t.arg.int({ required: true }),
      ...ledgerArgs(t),
    },
    resolve: (_root, args, ctx) => resolve.renewLock({ ...args, contextId: String(args.contextId) }, ctx),
  }),
  releaseLock: t.field({
    type: LockRef,
    description: "Releases the lock held with `token`; STALE_FENCE if it is not the current token or its lease ran out.",
    args: {
      contextId: t.arg.id({ required: true }),
      name: t.arg.string({ required: true, description: lockNameRule }),
      token: t.arg.int({ required: true }),
      ...ledgerArgs(t),
    },
    resolve: (_root, args, ctx) => resolve.releaseLock({ ...args, contextId: String(args.contextId) }, ctx),
  }),
}));
