// Proves, with fast-check against a real Redis, that a change-feed subscriber gets exactly the changes an independent model of the filter selects from the full history (per context in seq order, no gap, no duplicate, nothing dropped), in batches of 1..maxSize without resync, with a short batch never sent before maxWaitMs and batches never closer together than maxBatchesPerSecond allows.
import fc from "fast-check";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { ChangeBatch, FeedOptions } from "../../src/feed/change-pipeline.js";
import { FeedHub } from "../../src/feed/feed-hub.js";
import { redisTarget } from "../../src/server/app.js";
import { largestEntryBytes } from "../../src/store/feed-reader.js";
import { Keys } from "../../src/redis/keys.js";
import {
  AcquireLockDocument,
  AllocateDocument,
  CreateContextDocument,
  GetHistoryDocument,
  MergeContextDocument,
  PatchContextDocument,
  ReleaseLockDocument,
} from "../gql/graphql.js";
import { useTestServer } from "../helpers/app.js";

const server = useTestServer();
let keys: Keys;
let hub: FeedHub;
let run = 0;

beforeAll(async () => {
  keys = new Keys(server.config.keyPrefix);
  const limits = { changes: 10_000, bytes: 4_194_304, stallMs: 12_000, largestEntryBytes: largestEntryBytes(server.config) };
  hub = await FeedHub.open(redisTarget(server.config), server.redis, keys, limits, () => undefined, (source, message, cause) => console.error(source, message, cause));
});
afterAll(async () => {
  await hub?.close(true, 1_000);
});

/** Slack for timer and event-loop granularity on the timing bounds, in ms. */
const SLACK_MS = 2;
/** How long a run waits for its expected changes before it fails with what it got, in ms: a bound
 * for a lost change, not a latency goal, so generous enough for a busy machine. */
const DELIVERY_DEADLINE_MS = 20_000;

const PATCH_PATHS = ["/a", "/a/b", "/ab", "/c/d", "/c"] as const;
const FILTER_PATHS = ["/a", "/a/b", "/ab", "/c", "/c/d", "/z"] as const;
const EXTRA_KINDS = ["CREATED", "ROLLED_BACK", "DELETED", "ALLOCATED", "RELEASED", "LOCK_ACQUIRED", "LOCK_RELEASED"] as const;

type Op =
  | { readonly op: "patch"; readonly ctx: number; readonly path: (typeof PATCH_PATHS)[number]; readonly n: number }
  | { readonly op: "merge"; readonly ctx: number; readonly key: "a" | "c"; readonly n: number }
  | { readonly op: "allocate"; readonly ctx: number }
  | { readonly op: "lock"; readonly ctx: number };

interface Sub {
  /** Indexes of the contexts named in contextIds, or null. */
  readonly contextIds: readonly number[] | null;
  /** When contextIds is null: the run prefix, or the id of one context used as a prefix. */
  readonly prefixOf: "run" | number;
  readonly paths: readonly string[] | null;
  readonly kinds: readonly string[] | null;
  readonly maxSize: number;
  readonly maxWaitMs: number;
  readonly maxBatchesPerSecond: number | null;
}

const ctxArb = fc.integer({ min: 0, max: 2 });
// Document changes weigh more: they are what the path filter decides on. Small n makes some writes
// set the value already there.
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant("patch" as const), ctx: ctxArb, path: fc.constantFrom(...PATCH_PATHS), n: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("merge" as const), ctx: ctxArb, key: fc.constantFrom("a" as const, "c" as const), n: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("allocate" as const), ctx: ctxArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("lock" as const), ctx: ctxArb }) },
);
const orNull = <T>(arb: fc.Arbitrary<T>, weight = 1): fc.Arbitrary<T | null> => fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight, arbitrary: arb });
const subArb: fc.Arbitrary<Sub> = fc.record({
  contextIds: orNull(fc.subarray([0, 1, 2], { minLength: 1 })),
  prefixOf: fc.constantFrom("run" as const, 0, 1, 2),
  paths: orNull(fc.shuffledSubarray([...FILTER_PATHS], { minLength: 1, maxLength: 3 }), 3),
  kinds: orNull(fc.subarray([...EXTRA_KINDS]).map((extra) => ["UPDATED", ...extra])),
  maxSize: fc.integer({ min: 1, max: 5 }),
  maxWaitMs: fc.integer({ min: 0, max: 30 }),
  maxBatchesPerSecond: orNull(fc.integer({ min: 20, max: 200 })),
});

interface HistoryEntry {
  readonly contextId: string;
  readonly seq: number;
  readonly kind: string;
  readonly paths: readonly string[];
}

/** The feed filter as API.md states it, written independently of src/feed/change-filter.ts. */
function modelWantsContext(sub: Sub, ids: readonly string[], idPrefix: string | null, contextId: string): boolean {
  if (sub.contextIds !== null) return sub.contextIds.some((i) => ids[i] === contextId);
  return contextId.startsWith(idPrefix!);
}

function segments(pointer: string): string[] {
  return pointer === "" ? [] : pointer.split("/").slice(1);
}

/** Equal, or one a prefix of the other on whole JSON Pointer segments. */
function overlap(x: string, y: string): boolean {
  const [a, b] = [segments(x), segments(y)];
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

function modelMatches(sub: Sub, change: HistoryEntry): boolean {
  if (sub.kinds !== null && !sub.kinds.includes(change.kind)) return false;
  if (sub.paths !== null && (change.kind === "UPDATED" || change.kind === "ROLLED_BACK")) {
    return change.paths.some((p) => sub.paths!.some((q) => overlap(p, q)));
  }
  return true;
}

/** A value for a replace at `path` that keeps the document's shape (a and c stay objects). */
function valueAt(path: string, n: number): unknown {
  if (path === "/a") return { b: n };
  if (path === "/c") return { d: n };
  return n;
}

interface Arrival {
  readonly at: number;
  readonly batch: ChangeBatch;
}

test("delivered = filter(history), batch sizes and waits respected, rate respected, nothing dropped", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 25 }), subArb, async (ops, sub) => {
      const prefix = `p${++run}-`;
      const ids = [0, 1, 2].map((i) => `${prefix}ctx${i}`);
      for (const id of ids) {
        await server.data(CreateContextDocument, { id, document: { a: { b: 1 }, ab: 1, c: { d: 1 }, resources: { limits: { credits: 1000 } } } });
      }
      const idPrefix = sub.contextIds !== null ? null : sub.prefixOf === "run" ? prefix : ids[sub.prefixOf]!;
      const wanted = ids.filter((id) => modelWantsContext(sub, ids, idPrefix, id));
      const options: FeedOptions = {
        filter: {
          contextIds: sub.contextIds === null ? null : sub.contextIds.map((i) => ids[i]!),
          idPrefix,
          paths: sub.paths,
          kinds: sub.kinds,
          actors: null,
          excludeActors: null,
          scope: null,
        },
        after: wanted.map((contextId) => ({ contextId, seq: 1 })),
        maxSize: sub.maxSize,
        maxWaitMs: sub.maxWaitMs,
        maxBatchesPerSecond: sub.maxBatchesPerSecond,
      };

      const subscription = await hub.subscribe(options);
      const arrivals: Arrival[] = [];
      let onArrival = (): void => undefined;
      // Always parked in next(), so an arrival is timed as the pipeline emits it.
      const consumer = (async () => {
        for (;;) {
          const result = await subscription.next();
          const at = performance.now();
          if (result.done) return;
          arrivals.push({ at, batch: result.value });
          onArrival();
        }
      })();

      try {
        /** performance.now() just before the mutation that made `<contextId> <seq>` was sent. */
        const sentAt = new Map<string, number>();
        const lastSeq = new Map(ids.map((id) => [id, 1]));
        const send = async (contextId: string, mutate: () => Promise<unknown>) => {
          const t = performance.now();
          await mutate();
          // The only writer of this run's contexts, writing one mutation at a time: the new seqs are this mutation's.
          const seq = Number(await server.redis.get(keys.context(contextId).seq));
          for (let s = lastSeq.get(contextId)! + 1; s <= seq; s++) sentAt.set(`${contextId} ${s}`, t);
          lastSeq.set(contextId, seq);
        };

        for (const op of ops) {
          const id = ids[op.ctx]!;
          switch (op.op) {
            case "patch":
              await send(id, () => server.data(PatchContextDocument, { id, patch: [{ op: "replace", path: op.path, value: valueAt(op.path, op.n) }] }));
              break;
            case "merge":
              await send(id, () => server.data(MergeContextDocument, { id, merge: op.key === "a" ? { a: { x: op.n } } : { c: { d: op.n } } }));
              break;
            case "allocate":
              await send(id, () => server.data(AllocateDocument, { contextId: id, request: [{ kind: "credits", amount: 1 }], mode: "UP_TO" }));
              break;
            case "lock": {
              let token = 0;
              await send(id, async () => {
                token = (await server.data(AcquireLockDocument, { contextId: id, name: "l", holder: "prop", leaseMs: 600_000 })).acquireLock.token;
              });
              await send(id, () => server.data(ReleaseLockDocument, { contextId: id, name: "l", token }));
              break;
            }
          }
        }
        // UPDATED at a filtered path of a wanted context: every generated filter selects it. "add"
        // because "/z" does not exist yet; on the other paths it replaces.
        const sentinelId = wanted[0]!;
        const sentinelPath = sub.paths?.[0] ?? "/a";
        await send(sentinelId, () => server.data(PatchContextDocument, { id: sentinelId, patch: [{ op: "add", path: sentinelPath, value: valueAt(sentinelPath, 1000) }] }));
        const sentinelSeq = lastSeq.get(sentinelId)!;

        const history: HistoryEntry[] = [];
        for (const id of ids) history.push(...(await server.data(GetHistoryDocument, { id, afterSeq: 1, limit: 1000 })).context!.history);
        const expected = Object.fromEntries(ids.map((id) => [id, history.filter((c) => c.contextId === id && wanted.includes(id) && modelMatches(sub, c))]));
        const delivered = () => {
          const out: Record<string, HistoryEntry[]> = Object.fromEntries(ids.map((id) => [id, []]));
          for (const { batch } of arrivals) for (const c of batch.changes) (out[c.contextId] ??= []).push(c);
          return out;
        };
        const complete = () => {
          const got = delivered();
          if (!got[sentinelId]!.some((c) => c.seq === sentinelSeq)) return false;
          return ids.every((id) => expected[id]!.length === 0 || got[id]!.some((c) => c.seq === expected[id]!.at(-1)!.seq));
        };
        // Per context order only: another context's last change may follow the sentinel.
        await new Promise<void>((resolve) => {
          const deadline = setTimeout(resolve, DELIVERY_DEADLINE_MS);
          onArrival = () => {
            if (!complete()) return;
            clearTimeout(deadline);
            resolve();
          };
          onArrival();
        });

        const got = delivered();
        const seqsOf = (byId: Record<string, readonly HistoryEntry[]>) => Object.fromEntries(Object.entries(byId).map(([id, cs]) => [id, cs.map((c) => c.seq)]));
        const shape = (byId: Record<string, readonly HistoryEntry[]>) =>
          Object.fromEntries(Object.entries(byId).map(([id, cs]) => [id, cs.map((c) => `${c.seq} ${c.kind} ${JSON.stringify(c.paths)}`)]));
        const where = `case ${JSON.stringify({ ops, sub, ids, idPrefix })}`;
        // (1) delivered = filter(history), per context in seq order, no gap, duplicate or drop.
        expect(seqsOf(got), where).toEqual(seqsOf(expected));
        expect(shape(got), where).toEqual(shape(expected));

        // (2) batch sizes.
        for (const { batch } of arrivals) {
          expect(batch.resync, where).toEqual([]);
          expect(batch.changes.length, where).toBeGreaterThanOrEqual(1);
          expect(batch.changes.length, where).toBeLessThanOrEqual(sub.maxSize);
        }

        // (3) rate.
        if (sub.maxBatchesPerSecond !== null) {
          const gaps = arrivals.slice(1).map((a, i) => a.at - arrivals[i]!.at);
          for (const gap of gaps) expect(gap, `${where} gaps ${JSON.stringify(gaps)}`).toBeGreaterThanOrEqual(1000 / sub.maxBatchesPerSecond - SLACK_MS);
        }

        // (4) a batch that is not full waited maxWaitMs after its first change was sent.
        for (const { at, batch } of arrivals) {
          if (batch.changes.length >= sub.maxSize) continue;
          const first = batch.changes[0]!;
          const sent = sentAt.get(`${first.contextId} ${first.seq}`);
          expect(sent, `${where} no send time for ${first.contextId} ${first.seq}`).toBeDefined();
          expect(at - sent!, `${where} batch ${JSON.stringify(batch.changes.map((c) => `${c.contextId} ${c.seq}`))}`).toBeGreaterThanOrEqual(
            sub.maxWaitMs - SLACK_MS,
          );
        }
      } finally {
        await subscription.return();
        await consumer;
      }
    }),
    { numRuns: 25 },
  );
}, 120_000);
