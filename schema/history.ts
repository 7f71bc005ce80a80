import { Kind, type GraphQLResolveInfo } from "graphql";
import * as resolve from "../resolvers/contexts.js";
import type { PatchOperation } from "../src/json/patch.js";
import { builder } from "./builder.js";
import { ChangeKind } from "./change.js";
import { ContextChangeRef, SwarmContextRef } from "./refs.js";
import { JSONPatchOp } from "./swarm-context.js";

/** The history and diff fields of SwarmContext (the rest are in swarm-context.ts). */

const READ_BOUNDS = `It reads at most 4 MiB of entries, or what the response may still carry (SWARM_MAX_RESPONSE_BYTES), and with a filter at most ${resolve.HISTORY_SCAN_FACTOR} x limit (or last) entries, matching or not: a page may end short of its size, so continue from historyPage.scannedTo (or, without a filter, from the last seq returned). LIMIT_EXCEEDED when not even the first entry fits.`;

const HistoryPageRef = builder.objectRef<resolve.HistoryPageResult>("HistoryPage").implement({
  description: "A page of a context's change feed, and where the read stopped.",
  fields: (t) => ({
    changes: t.field({ type: [ContextChangeRef], resolve: (p) => p.changes, description: "The entries that matched, in reading order." }),
    scannedTo: t.exposeInt("scannedTo", {
      nullable: true,
      description:
        "The seq of the last entry read, matching or not (the read's afterSeq or beforeSeq when it read none): pass it as afterSeq (forward) or beforeSeq (backward) to continue. A page with no changes still moves it on.",
    }),
    hasMore: t.exposeBoolean("hasMore", {
      description:
        "The read stopped at a bound (its size, the scan bound, the bytes) rather than at the end of the retained feed (newest entry forward, oldest retained backward); false means that, for now, nothing is left that way.",
    }),
  }),
});

const PatchOperationRef = builder.objectRef<PatchOperation>("PatchOperation").implement({
  description: "One RFC 6902 operation, as the JSONPatchOperation input takes it.",
  fields: (t) => ({
    op: t.field({ type: JSONPatchOp, resolve: (o) => o.op }),
    path: t.exposeString("path", { description: "A JSON Pointer (RFC 6901)." }),
    from: t.string({ nullable: true, description: "move and copy only.", resolve: (o) => o.from ?? null }),
    value: t.field({
      type: "JSON",
      nullable: true,
      description: "add, replace and test only (null there is the JSON value null).",
      resolve: (o) => (o.value === undefined ? null : (o.value as never)),
    }),
  }),
});

/**
 * Whether the query gave argument `name` itself (a literal, or a variable with a value), rather
 * than leaving it to its default: `limit` has one (100, so the query cost counts it), and giving
 * it with beforeSeq/last is refused.
 */
function given(info: GraphQLResolveInfo, name: string): boolean {
  const node = info.fieldNodes[0]?.arguments?.find((a) => a.name.value === name);
  if (!node) return false;
  return node.value.kind !== Kind.VARIABLE || info.variableValues[node.value.name.value] != null;
}

builder.objectFields(SwarmContextRef, (t) => {
  const historyArgs = {
    afterSeq: t.arg.int({ description: "Oldest first, after this seq (default: from the oldest retained)." }),
    limit: t.arg.int({
      defaultValue: resolve.DEFAULT_HISTORY_LIMIT,
      description: `Oldest first, at most this many entries (1 to ${resolve.MAX_HISTORY_LIMIT}).`,
    }),
    beforeSeq: t.arg.int({ description: "Newest first, before this seq (at least 1; default: from the newest)." }),
    last: t.arg.int({ description: `Newest first, at most this many entries (1 to ${resolve.MAX_HISTORY_LIMIT}; default ${resolve.DEFAULT_HISTORY_LIMIT}).` }),
    kinds: t.arg({ type: [ChangeKind], description: "Only changes of these kinds ([] matches none)." }),
    actors: t.arg.stringList({ description: "Only changes by these actors." }),
    paths: t.arg.stringList({
      description:
        "JSON Pointers: UPDATED and ROLLED_BACK changes match when one of their paths equals, contains or lies within one of these (as the contextChanges filter); other kinds are not filtered by path.",
    }),
  };
  const describe = (what: string) =>
    `${what} Oldest first with afterSeq/limit (the default), newest first with beforeSeq/last; giving both pairs is VALIDATION_FAILED. ${READ_BOUNDS} A forward read whose entries right after afterSeq are no longer retained is RESYNC_REQUIRED, never a silent gap; a backward read ends where retention ends.`;
  return {
    history: t.field({
      type: [ContextChangeRef],
      description: describe("Change-feed entries, filtered by kinds, actors and paths (all optional)."),
      args: historyArgs,
      resolve: (c, args, ctx, info) => resolve.history(c, { ...args, limit: given(info, "limit") ? args.limit : null }, ctx),
    }),
    historyPage: t.field({
      type: HistoryPageRef,
      description: describe("As `history`, with where the read stopped: what a console pages with, filtered or not."),
      args: historyArgs,
      resolve: (c, args, ctx, info) => resolve.historyPage(c, { ...args, limit: given(info, "limit") ? args.limit : null }, ctx),
    }),
    diff: t.field({
      type: [PatchOperationRef],
      description:
        "The RFC 6902 JSON Patch that turns the document of `fromVersion` into that of `toVersion` (objects compared member by member, anything else that differs replaced whole; [] when equal). Both must be retained (SWARM_HISTORY_LIMIT): otherwise NOT_FOUND with extensions.oldestRetainedVersion. Its size is bounded by the two documents' (each at most SWARM_MAX_DOCUMENT_BYTES): values come from the `toVersion` document, one path per member that differs; it counts against SWARM_MAX_RESPONSE_BYTES.",
      args: { fromVersion: t.arg.int({ required: true }), toVersion: t.arg.int({ required: true }) },
      resolve: (c, args, ctx) => resolve.diff(c, args, ctx),
    }),
  };
});
