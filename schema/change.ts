import { builder } from "./builder.js";
import { AllocationRef, ContextChangeRef, LockRef } from "./refs.js";

export const ChangeKind = builder.enumType("ChangeKind", {
  description: "What a change-feed entry records.",
  values: {
    CREATED: { description: "The context was created (version 1)." },
    UPDATED: { description: "The document changed through patchContext or mergeContext." },
    ROLLED_BACK: { description: "rollbackContext wrote an earlier document as a new version." },
    DELETED: { description: "The context was deleted." },
    ALLOCATED: { description: "An allocation was granted." },
    USAGE_REPORTED: { description: "Usage was reported against an allocation." },
    RELEASED: { description: "An allocation was released." },
    EXPIRED: { description: "An allocation's lease ran out." },
    RENEWED: { description: "An allocation's lease was extended." },
    LOCK_ACQUIRED: { description: "A lock was acquired (with a new fencing token)." },
    LOCK_RELEASED: { description: "A lock was released or its lease ran out." },
  } as const,
});

ContextChangeRef.implement({
  description: "One entry of a context's change feed. Every change of any kind gets the next seq.",
  fields: (t) => ({
    contextId: t.exposeID("contextId"),
    seq: t.exposeInt("seq", { description: "Position in the context's feed: gap-free, +1 per change." }),
    version: t.exposeInt("version", { description: "The document version after this change." }),
    kind: t.field({ type: ChangeKind, resolve: (c) => c.kind as typeof ChangeKind.$inferType }),
    paths: t.exposeStringList("paths", {
      description: "JSON Pointers of the document parts this change touched (\"\" is the whole document).",
    }),
    patch: t.field({
      type: "JSON",
      description:
        "The change as an RFC 6902 JSON Patch from the previous version (CREATED: one add of the whole document).",
      resolve: (c) => c.patch as never,
    }),
    actor: t.exposeString("actor", { description: "Who made the change." }),
    reason: t.exposeString("reason", { nullable: true, description: "Why, as the writer said." }),
    at: t.field({ type: "DateTime", resolve: (c) => c.at }),
    allocation: t.field({
      type: AllocationRef,
      nullable: true,
      description: "The allocation as this change left it (ALLOCATED, USAGE_REPORTED, RELEASED, EXPIRED, RENEWED).",
      resolve: (c) => c.allocation,
    }),
    lock: t.field({
      type: LockRef,
      nullable: true,
      description: "The lock this change took or let go (LOCK_ACQUIRED, LOCK_RELEASED).",
      resolve: (c) => c.lock,
    }),
  }),
});
