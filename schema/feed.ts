import * as resolve from "../resolvers/feed.js";
import type { AppError } from "../src/errors.js";
import type { ChangeBatch as Batch, ResyncEntry as Resync } from "../src/feed/change-pipeline.js";
import { builder } from "./builder.js";
import { ChangeKind } from "./change.js";
import { ContextChangeRef } from "./refs.js";

const ResyncEntry = builder.objectRef<Resync>("ResyncEntry").implement({
  description:
    "Changes of a context this subscription will not deliver (its cursor was older than what is retained, past the end, or the subscriber fell behind): re-read the context, which was at `version` as of `seq`, and take `seq` as your cursor for it.",
  fields: (t) => ({
    contextId: t.exposeID("contextId"),
    seq: t.exposeInt("seq", { description: "The cursor to continue from (pass it in `after` to resume)." }),
    version: t.exposeInt("version", { description: "The document version as of `seq` (0: the context did not exist)." }),
  }),
});

const ChangeBatch = builder.objectRef<Batch>("ChangeBatch").implement({
  description: "Changes delivered together, per context in seq order with no gap and no duplicate.",
  fields: (t) => ({
    changes: t.field({ type: [ContextChangeRef], resolve: (b) => b.changes }),
    resync: t.field({
      type: [ResyncEntry],
      description: "Contexts whose changes up to their entry's seq will not be delivered; see ResyncEntry.",
      resolve: (b) => b.resync,
    }),
  }),
});

const SliceUpdate = builder.objectRef<resolve.SliceUpdate>("SliceUpdate").implement({
  description: "The watched paths' values as of one version.",
  fields: (t) => ({
    version: t.exposeInt("version"),
    seq: t.exposeInt("seq"),
    slice: t.field({ type: "JSON", description: "An object of path -> value (null where a path does not resolve).", resolve: (u) => u.slice }),
  }),
});

const CursorInput = builder.inputType("CursorInput", {
  description: "A context's last seen seq.",
  fields: (t) => ({
    contextId: t.id({ required: true }),
    seq: t.int({ required: true, description: "The last seq you have seen; delivery resumes with the next one." }),
  }),
});

const BatchInput = builder.inputType("BatchInput", {
  fields: (t) => ({
    maxSize: t.int({
      description: `A batch is sent as soon as it holds this many changes (1 to ${resolve.MAX_BATCH_SIZE}, default ${resolve.DEFAULT_BATCH_SIZE}).`,
    }),
    maxWaitMs: t.int({
      description: `...or this many ms after its first change (0 to ${resolve.MAX_BATCH_WAIT_MS}, default 0: at once).`,
    }),
  }),
});

builder.subscriptionType({
  description: "Live updates, over graphql-ws (WebSocket) or SSE, from the contexts' change feeds.",
  fields: (t) => ({
    contextChanges: t.field({
      type: ChangeBatch,
      description: [
        "The change feed: per context in seq order, with no gap and no duplicate, including across a resume with `after`.",
        "Without contextIds or idPrefix it covers every context. `paths` selects UPDATED and ROLLED_BACK changes that touch one of them (equal, or one a prefix of the other on whole segments); other kinds are selected by `kinds` alone.",
        "Over `maxBatchesPerSecond` changes wait and join a later batch; none is dropped. A subscriber that falls more than the server's bound (SWARM_SUBSCRIBER_BUFFER changes) behind gets a batch of `resync` entries and then the error RESYNC_REQUIRED whose extensions.after holds a cursor for every context: subscribe again with it.",
      ].join(" "),
      args: {
        contextIds: t.arg.idList({ description: `Only these contexts (1 to ${resolve.MAX_LIST}).` }),
        idPrefix: t.arg.string({ description: "Only contexts whose id starts with this." }),
        paths: t.arg.stringList({ description: `JSON Pointers (at most ${resolve.MAX_LIST}); see above.` }),
        kinds: t.arg({ type: [ChangeKind] }),
        actors: t.arg.stringList({ description: `Only changes by these actors (at most ${resolve.MAX_LIST}).` }),
        excludeActors: t.arg.stringList({ description: `No changes by these actors, e.g. your own (at most ${resolve.MAX_LIST}).` }),
        after: t.arg({
          type: [CursorInput],
          description:
            `Resume points (at most ${resolve.MAX_LIST}, one per context): matching changes after each seq are replayed first, then delivery continues live. A seq older than what is retained, or past the end, gives a \`resync\` entry. Contexts without a cursor start from now.`,
        }),
        batch: t.arg({ type: BatchInput }),
        maxBatchesPerSecond: t.arg.float({ description: `At most this many batches per second (more than 0, at most ${resolve.MAX_RATE}).` }),
      },
      subscribe: (_root, args, ctx) => resolve.contextChanges(args, ctx),
      resolve: (batch: Batch) => resolve.deliver(batch),
    }),
    watchSlice: t.field({
      type: SliceUpdate,
      description:
        "The values at `paths` of one context now, then again whenever a change alters one of them; over `maxUpdatesPerSecond` only the latest value is sent. Ends with NOT_FOUND when the context does not exist or is deleted.",
      args: {
        id: t.arg.id({ required: true }),
        paths: t.arg.stringList({ required: true, description: `JSON Pointers (RFC 6901), 1 to ${resolve.MAX_LIST}.` }),
        maxUpdatesPerSecond: t.arg.float({ description: `More than 0, at most ${resolve.MAX_RATE}.` }),
      },
      subscribe: (_root, args, ctx) => resolve.watchSlice(args, ctx),
      resolve: (update: resolve.SliceUpdate | AppError) => resolve.deliverValue(update),
    }),
  }),
});
