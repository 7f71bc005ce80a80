import * as resolve from "../resolvers/contexts.js";
import type { ContextView, DeletedContext } from "../src/store/contexts.js";
import { LOCK_NAME } from "../src/model/identifiers.js";
import { builder } from "./builder.js";
import { ContextChangeRef, SwarmContextRef } from "./refs.js";

const POINTER = "A JSON Pointer (RFC 6901); \"\" is the whole document.";
const IDLE_WRITE =
  " A write whose result equals the current document writes nothing (no version, no change-feed entry) and is answered with the current version and seq; it is still checked (expectedVersion, fence) and its opId recorded.";

SwarmContextRef.implement({
  description:
    "The versioned JSON document holding one swarm's shared state, as of one version. Its id is the swarm id.",
  fields: (t) => ({
    id: t.exposeID("id"),
    version: t.exposeInt("version", {
      description: "1 at creation, +1 on every document change (patch, merge, rollback); a write that changes nothing leaves it.",
    }),
    seq: t.exposeInt("seq", {
      description:
        "Position of the context's latest change-feed entry (any kind of change); cursors are seqs. A context starts at the deployment's counter floor + 1 (0 + 1 until a deleted context has been pruned; see deleteContext), or after the seqs of a deleted context of the same id that are still kept.",
    }),
    createdAt: t.field({ type: "DateTime", resolve: (c) => c.createdAt }),
    updatedAt: t.field({ type: "DateTime", resolve: (c) => c.updatedAt }),
    updatedBy: t.exposeString("updatedBy", { description: "Actor of the change that made this version." }),
    document: t.field({
      type: "JSON",
      description: "The whole document (a JSON object).",
      resolve: (c, _args, ctx) => resolve.document(c, ctx),
    }),
    value: t.field({
      type: "JSON",
      nullable: true,
      description: "The value at one path; null when the path does not resolve.",
      args: { path: t.arg.string({ required: true, description: POINTER }) },
      resolve: (c, args, ctx) => resolve.value(c, args, ctx),
    }),
    slice: t.field({
      type: "JSON",
      description: "An object of path -> value for just the paths asked for; a path that does not resolve gives null.",
      args: { paths: t.arg.stringList({ required: true, description: "JSON Pointers (RFC 6901)." }) },
      resolve: (c, args, ctx) => resolve.slice(c, args, ctx),
    }),
    snapshot: t.field({
      type: "JSON",
      description:
        "The document as it was at `version`. Only the last versions are retained (SWARM_HISTORY_LIMIT, default 100); older ones give NOT_FOUND with extensions.oldestRetainedVersion.",
      args: { version: t.arg.int({ required: true }) },
      resolve: (c, args, ctx) => resolve.snapshot(c, args, ctx),
    }),
    history: t.field({
      type: [ContextChangeRef],
      description:
        "Change-feed entries after `afterSeq` (default: the oldest retained), oldest first: at most `limit`, and fewer when their bytes would pass 4 MiB or what the response may still carry (SWARM_MAX_RESPONSE_BYTES): continue after the last seq returned (LIMIT_EXCEEDED when not even the first fits). If entries right after `afterSeq` are no longer retained the answer is RESYNC_REQUIRED, never a silent gap.",
      args: {
        afterSeq: t.arg.int(),
        limit: t.arg.int({ defaultValue: 100, description: `At most this many entries (1 to ${resolve.MAX_HISTORY_LIMIT}).` }),
      },
      resolve: (c, args, ctx) => resolve.history(c, { afterSeq: args.afterSeq, limit: args.limit ?? 100 }, ctx),
    }),
  }),
});

const PageInfo = builder
  .objectRef<{ hasNextPage: boolean; endCursor: string | null }>("PageInfo")
  .implement({
    fields: (t) => ({
      hasNextPage: t.exposeBoolean("hasNextPage"),
      endCursor: t.exposeString("endCursor", { nullable: true, description: "Pass as `after` for the next page." }),
    }),
  });

const ContextEdge = builder.objectRef<{ cursor: string; node: ContextView }>("ContextEdge").implement({
  fields: (t) => ({
    cursor: t.exposeString("cursor"),
    node: t.field({ type: SwarmContextRef, resolve: (e) => e.node }),
  }),
});

const ContextConnection = builder
  .objectRef<{ edges: { cursor: string; node: ContextView }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } }>(
    "ContextConnection",
  )
  .implement({
    fields: (t) => ({
      edges: t.field({ type: [ContextEdge], resolve: (c) => c.edges }),
      pageInfo: t.field({ type: PageInfo, resolve: (c) => c.pageInfo }),
    }),
  });

const DeletedContextRef = builder.objectRef<DeletedContext>("DeletedContext").implement({
  fields: (t) => ({
    id: t.exposeID("id"),
    version: t.exposeInt("version", { description: "The version the context had when it was deleted." }),
    seq: t.exposeInt("seq", { description: "Seq of the DELETED entry in the change feed." }),
  }),
});

const JSONPatchOp = builder.enumType("JSONPatchOp", {
  description: "RFC 6902 operation names, lower-case as in JSON Patch documents.",
  values: ["add", "remove", "replace", "move", "copy", "test"] as const,
});

const JSONPatchOperation = builder.inputType("JSONPatchOperation", {
  description: "One RFC 6902 operation. `value` is required by add, replace and test; `from` by move and copy.",
  fields: (t) => ({
    op: t.field({ type: JSONPatchOp, required: true }),
    path: t.string({ required: true, description: POINTER }),
    from: t.string({ description: POINTER }),
    value: t.field({ type: "JSON" }),
  }),
});

builder.queryFields((t) => ({
  context: t.field({
    type: SwarmContextRef,
    nullable: true,
    description: "A context by id, or null when there is none.",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => resolve.context({ id: String(args.id) }, ctx),
  }),
  contexts: t.field({
    type: ContextConnection,
    description: "Contexts ordered by id, a page at a time.",
    args: {
      first: t.arg.int({ defaultValue: 50, description: `Page size, 1 to ${resolve.MAX_PAGE_SIZE}.` }),
      after: t.arg.string({ description: "endCursor of the previous page." }),
      idPrefix: t.arg.string({ description: "Only ids starting with this." }),
    },
    resolve: (_root, args, ctx) => resolve.contexts({ ...args, first: args.first ?? 50 }, ctx),
  }),
}));

const FenceInput = builder.inputType("FenceInput", {
  description: "A lock's fencing token: the write is refused with STALE_FENCE unless `token` is the lock's current token and its lease runs.",
  fields: (t) => ({
    lock: t.string({ required: true, description: `Matches ${LOCK_NAME.source}; VALIDATION_FAILED (path fence.lock) otherwise.` }),
    token: t.int({ required: true }),
  }),
});

const writeArgs = (t: Parameters<Parameters<typeof builder.mutationFields>[0]>[0]) => ({
  opId: t.arg.string({
    description:
      "Idempotency key chosen by the client: a retry with the same opId returns the first outcome and is applied at most once. Remembered for SWARM_OPID_TTL_SECONDS (default 24 h).",
  }),
  reason: t.arg.string({ description: "Why; recorded on the change-feed entry." }),
});

const expectedVersionArg = (t: Parameters<Parameters<typeof builder.mutationFields>[0]>[0]) =>
  t.arg.int({ description: "Compare-and-set: refused with VERSION_CONFLICT unless this is the current version." });

builder.mutationFields((t) => ({
  createContext: t.field({
    type: SwarmContextRef,
    description:
      "Creates a context at version 1. Without `id`, one is generated (derived from opId when given, so retries land on the same context).",
    args: { id: t.arg.id(), document: t.arg({ type: "JSON", required: true }), ...writeArgs(t) },
    resolve: (_root, args, ctx) => resolve.createContext({ ...args, document: args.document!, id: args.id == null ? null : String(args.id) }, ctx),
  }),
  patchContext: t.field({
    type: SwarmContextRef,
    description: `Applies an RFC 6902 JSON Patch, all-or-nothing, as the next version (a failing \`test\` is INVALID_PATCH).${IDLE_WRITE}`,
    args: {
      id: t.arg.id({ required: true }),
      patch: t.arg({ type: [JSONPatchOperation], required: true }),
      expectedVersion: expectedVersionArg(t),
      fence: t.arg({ type: FenceInput }),
      ...writeArgs(t),
    },
    resolve: (_root, args, ctx) => resolve.patchContext({ ...args, id: String(args.id) }, ctx),
  }),
  mergeContext: t.field({
    type: SwarmContextRef,
    description: `Applies an RFC 7386 JSON Merge Patch as the next version (null deletes a member).${IDLE_WRITE}`,
    args: {
      id: t.arg.id({ required: true }),
      merge: t.arg({ type: "JSON", required: true }),
      expectedVersion: expectedVersionArg(t),
      fence: t.arg({ type: FenceInput }),
      ...writeArgs(t),
    },
    resolve: (_root, args, ctx) => resolve.mergeContext({ ...args, merge: args.merge!, id: String(args.id) }, ctx),
  }),
  rollbackContext: t.field({
    type: SwarmContextRef,
    description: `Writes a NEW version whose document equals the retained snapshot of \`toVersion\`.${IDLE_WRITE}`,
    args: {
      id: t.arg.id({ required: true }),
      toVersion: t.arg.int({ required: true }),
      expectedVersion: expectedVersionArg(t),
      ...writeArgs(t),
    },
    resolve: (_root, args, ctx) => resolve.rollbackContext({ ...args, id: String(args.id) }, ctx),
  }),
  deleteContext: t.field({
    type: DeletedContextRef,
    description:
      "Deletes a context, its history, allocations and locks (ledger operations on it are NOT_FOUND from then on); the change feed records DELETED. The feed and the counters of seqs, allocation numbers and lock tokens are kept for SWARM_DELETED_CONTEXT_RETENTION_MS: a context created again under the id within it continues them; after it they are pruned, and a new context of the id starts above the deployment's counter floor, so that no earlier cursor, allocation id or fencing token matches it.",
    args: { id: t.arg.id({ required: true }), expectedVersion: expectedVersionArg(t), ...writeArgs(t) },
    resolve: (_root, args, ctx) => resolve.deleteContext({ ...args, id: String(args.id) }, ctx),
  }),
}));
