import * as resolve from "../resolvers/contexts.js";
import type { ContextView, DeletedContext } from "../src/store/contexts.js";
import { LOCK_NAME } from "../src/model/identifiers.js";
import { builder } from "./builder.js";
import { SwarmContextRef } from "./refs.js";

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
  }),
});

export const PageInfo = builder
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

const ContextConnection = builder.objectRef<resolve.ContextConnection>("ContextConnection").implement({
  fields: (t) => ({
    edges: t.field({ type: [ContextEdge], resolve: (c) => c.edges }),
    pageInfo: t.field({ type: PageInfo, resolve: (c) => c.pageInfo }),
    totalCount: t.int({
      nullable: true,
      description:
        "How many contexts the filters (idPrefix, updatedAfter) and the key's scope select, all pages together; counted from the indexes, so a context being created or deleted meanwhile may or may not be in it. Null only when counting would read more than 2,000 index entries: both idPrefix and updatedAfter given and each selecting more than 2,000 contexts, or a key scope with a `*` before its end.",
      resolve: (c, _args, ctx) => resolve.contextsTotal(c, ctx),
    }),
  }),
});

const ContextOrder = builder.enumType("ContextOrder", {
  description: "The order of the contexts list.",
  values: {
    ID: { description: "Ascending ids (byte order)." },
    UPDATED_AT_DESC: {
      description:
        "Most recently updated first (updatedAt, then descending ids). A context written while a client walks the pages moves to the front: the walk does not see it again, and every context not written during the walk is seen exactly once.",
    },
  } as const,
});

const DeletedContextRef = builder.objectRef<DeletedContext>("DeletedContext").implement({
  fields: (t) => ({
    id: t.exposeID("id"),
    version: t.exposeInt("version", { description: "The version the context had when it was deleted." }),
    seq: t.exposeInt("seq", { description: "Seq of the DELETED entry in the change feed." }),
  }),
});

export const JSONPatchOp = builder.enumType("JSONPatchOp", {
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
    description:
      "Contexts the key's scope holds, a page at a time, in `orderBy` order. A page reads only its contexts' heads (no document unless `document` or a path of it is selected) and at most 2,000 index entries: a page can end short of `first` with hasNextPage true; continue from endCursor.",
    args: {
      first: t.arg.int({ defaultValue: 50, description: `Page size, 1 to ${resolve.MAX_PAGE_SIZE}.` }),
      after: t.arg.string({ description: "endCursor (or an edge's cursor) of a page of the same orderBy." }),
      idPrefix: t.arg.string({ description: "Only ids starting with this." }),
      updatedAfter: t.arg({ type: "DateTime", description: "Only contexts whose updatedAt is later than this." }),
      orderBy: t.arg({ type: ContextOrder, defaultValue: "ID" }),
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

const dryRunArg = (t: Parameters<Parameters<typeof builder.mutationFields>[0]>[0]) =>
  t.arg.boolean({
    description:
      "Preview: run every check the write runs (arguments, document rules, authorization, expectedVersion, fence, ALREADY_EXISTS), against the state now, and answer with the SwarmContext the write would produce (its document, the version and seq it would get were it the next write, updatedAt now), writing nothing: no version, no change-feed entry, no opId record. Nothing is reserved: a real write after it may get another version or be refused. With an opId already recorded, the answer is that recorded outcome, as the real retry's would be; otherwise the opId is checked but not recorded, so the same call without dryRun applies it. Without id (createContext), the id shown is generated for this answer only unless opId names it.",
  });

const expectedVersionArg = (t: Parameters<Parameters<typeof builder.mutationFields>[0]>[0]) =>
  t.arg.int({ description: "Compare-and-set: refused with VERSION_CONFLICT unless this is the current version." });

builder.mutationFields((t) => ({
  createContext: t.field({
    type: SwarmContextRef,
    description:
      "Creates a context at version 1. Without `id`, one is generated (derived from opId when given, so retries land on the same context).",
    args: { id: t.arg.id(), document: t.arg({ type: "JSON", required: true }), ...writeArgs(t), dryRun: dryRunArg(t) },
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
      dryRun: dryRunArg(t),
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
      dryRun: dryRunArg(t),
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
      dryRun: dryRunArg(t),
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

