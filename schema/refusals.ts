import * as resolve from "../resolvers/feed.js";
import type { AppError } from "../src/errors.js";
import { BUFFER_NOTICES, MAX_KINDS, MAX_MESSAGE, type LedgerRefusal as Refusal } from "../src/feed/refusal-notices.js";
import { builder } from "./builder.js";
import { ErrorCodeEnum } from "./errors.js";
import { ResourceAmount } from "./ledger.js";

const LedgerOperation = builder.enumType("LedgerOperation", {
  description: "A ledger mutation, by its field name.",
  values: {
    allocate: { description: "Mutation.allocate" },
    reportUsage: { description: "Mutation.reportUsage" },
    renewAllocation: { description: "Mutation.renewAllocation" },
    release: { description: "Mutation.release" },
  } as const,
});

const LedgerRefusal = builder.objectRef<Refusal>("LedgerRefusal").implement({
  description:
    "A ledger operation the ledger refused (INSUFFICIENT_RESOURCES, USAGE_EXCEEDED or ALLOCATION_ENDED). A refused operation changes nothing, so it has no change-feed entry; this notice is all there is of it.",
  fields: (t) => ({
    contextId: t.exposeID("contextId"),
    at: t.field({ type: "DateTime", description: "When the refusal was answered (the refusing server instance's clock).", resolve: (r) => r.at }),
    actor: t.exposeString("actor", { description: "The key name of the caller refused." }),
    operation: t.field({ type: LedgerOperation, resolve: (r) => r.operation }),
    code: t.field({ type: ErrorCodeEnum, resolve: (r) => r.code as never }),
    message: t.exposeString("message", { description: `The refusal's message, as the caller got it (at most ${MAX_MESSAGE} characters).` }),
    allocationId: t.exposeID("allocationId", { nullable: true, description: "The allocation named by reportUsage, renewAllocation or release." }),
    parentId: t.exposeID("parentId", { nullable: true, description: "allocate's parentId; null when carving from the budget, and for the other operations." }),
    requested: t.field({
      type: [ResourceAmount],
      nullable: true,
      description: `What was asked for, where known: allocate's request (a profile's amounts included when the budget refused it), the usage of reportUsage and release. At most ${MAX_KINDS} kinds.`,
      resolve: (r) => (r.requested ? [...r.requested] : null),
    }),
    available: t.field({
      type: [ResourceAmount],
      nullable: true,
      description: `What could be had, where known: per kind for INSUFFICIENT_RESOURCES (after policy.allocation.maxShare), the kind that would overspend and what remains of it for USAGE_EXCEEDED. At most ${MAX_KINDS} kinds.`,
      resolve: (r) => (r.available ? [...r.available] : null),
    }),
    dropped: t.exposeInt("dropped", {
      description: `How many notices this subscriber lost just before this one: it holds at most ${BUFFER_NOTICES} (and 256 KiB) it has not taken, and drops the oldest past that. 0 when none.`,
    }),
  }),
});

builder.subscriptionField("ledgerRefusals", (t) =>
  t.field({
    type: LedgerRefusal,
    description: [
      "Live notices of the ledger operations refused on context `contextId` (INSUFFICIENT_RESOURCES, USAGE_EXCEEDED, ALLOCATION_ENDED), made through any server instance.",
      "Best effort, not history: a subscriber sees the refusals made while it is subscribed, and none from before it subscribed; there is no cursor or replay, and notices published while this instance's Redis connection is down are lost.",
      "The count of refusals is in /metrics (swarm_ledger_refusals_total). Ends with UNAVAILABLE when this instance shuts down.",
    ].join(" "),
    args: { contextId: t.arg.id({ required: true }) },
    subscribe: (_root, args, ctx) => resolve.ledgerRefusals({ contextId: String(args.contextId) }, ctx),
    resolve: (notice: Refusal | AppError) => resolve.deliverValue(notice),
  }),
);
