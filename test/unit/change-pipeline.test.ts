// Proves the change pipeline's timing on a fake clock, with a fake feed reader in place of Redis: a short batch waits maxWaitMs for more, a full one goes at once, batches keep maxBatchesPerSecond apart, a gap is filled from the stream in order, the lag each change waited is reported, and a member that takes nothing for stallMs while more than its bound waits is ended with a resync and the cursor to resume from (not before).
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { ChangePipeline, type ChangeBatch, type FeedOptions, type SubscriberLimits } from "../../src/feed/change-pipeline.js";
import type { ChangeFilter } from "../../src/feed/change-filter.js";
import type { SubscriberQueue } from "../../src/feed/subscriber-queue.js";
import type { FeedEntry, FeedReader, FeedRead } from "../../src/store/feed-reader.js";

const ID = "ctx";
const ALL: ChangeFilter = { contextIds: null, idPrefix: null, paths: null, kinds: null, actors: null, excludeActors: null, scope: null };
const LIMITS: SubscriberLimits = { changes: 1_000, bytes: 1_000_000, stallMs: 1_000, largestEntryBytes: 1_000 };

/** The feed streams of a few contexts, in memory: what FeedReader would read from Redis. */
class FakeFeeds {
  readonly streams = new Map<string, FeedEntry[]>();

  /** Appends `count` changes to the context's stream (committed now, on the fake clock) and returns them. */
  append(contextId: string, count: number): FeedEntry[] {
    const stream = this.streams.get(contextId) ?? [];
    this.streams.set(contextId, stream);
    const added = Array.from({ length: count }, (_, i): FeedEntry => {
      const seq = stream.length + i + 1;
      const at = new Date().toISOString();
      return { contextId, seq, version: seq, kind: "UPDATED", paths: ["/n"], patch: [], actor: "a", reason: null, at, allocation: null, lock: null, bytes: 100 };
    });
    stream.push(...added);
    return added;
  }

  private last(contextId: string): number {
    return this.streams.get(contextId)?.length ?? 0;
  }

  // The pipeline's collaborator: the four reads it makes, over the streams above.
  readonly reader = {
    idsWithPrefix: async (prefix: string) => [...this.streams.keys()].filter((id) => id.startsWith(prefix)).sort(),
    seqs: async (ids: readonly string[]) => ids.map((id) => this.last(id)),
    head: async (contextId: string) => ({ seq: this.last(contextId), version: this.last(contextId) }),
    read: async (contextId: string, afterSeq: number | null, limit: number): Promise<FeedRead> => ({
      entries: (this.streams.get(contextId) ?? []).filter((e) => e.seq > (afterSeq ?? 0)).slice(0, limit),
      trimmedTo: null,
    }),
  } satisfies Pick<FeedReader, "idsWithPrefix" | "seqs" | "head" | "read">;
}

let feeds: FakeFeeds;
let lags: number[];

beforeEach(() => {
  vi.useFakeTimers();
  feeds = new FakeFeeds();
  feeds.append(ID, 0);
  lags = [];
});
afterEach(() => {
  vi.useRealTimers();
});

/** A started pipeline on the fake feeds with one member. */
async function pipeline(options: Partial<FeedOptions>, limits: Partial<SubscriberLimits> = {}) {
  const settings = {
    // A FeedReader has private fields (its Redis client), so the fake stands in by cast.
    reader: feeds.reader as unknown as FeedReader,
    limits: { ...LIMITS, ...limits },
    observeLag: (ms: number) => lags.push(ms),
    readFailed: (contextId: string, err: unknown) => {
      throw new Error(`read of ${contextId} failed: ${String(err)}`);
    },
  };
  const p = new ChangePipeline({ filter: ALL, after: [], maxSize: 100, maxWaitMs: 0, maxBatchesPerSecond: null, ...options }, settings, () => undefined);
  await p.ready;
  return { p, member: p.join() };
}

/** Appends `count` changes and offers them as the hub would, having read them. */
function commit(p: ChangePipeline, count: number): void {
  p.offer(ID, feeds.append(ID, count));
}

const seqs = (member: SubscriberQueue<ChangeBatch>) => member.undelivered.map((batch) => batch.changes.map((c) => c.seq));

test("a short batch waits maxWaitMs from its first change for more, then goes; each change's lag is heard", async () => {
  const { p, member } = await pipeline({ maxWaitMs: 50 });
  commit(p, 1);
  await vi.advanceTimersByTimeAsync(30);
  commit(p, 1);
  await vi.advanceTimersByTimeAsync(19);
  expect(seqs(member)).toEqual([]);
  await vi.advanceTimersByTimeAsync(1);
  expect(seqs(member)).toEqual([[1, 2]]);
  expect(lags).toEqual([50, 20]);
});

test("a full batch goes at once; what is left waits maxWaitMs from when it was taken", async () => {
  const { p, member } = await pipeline({ maxSize: 3, maxWaitMs: 50 });
  commit(p, 3);
  expect(seqs(member)).toEqual([[1, 2, 3]]);
  commit(p, 5);
  expect(seqs(member)).toEqual([[1, 2, 3], [4, 5, 6]]);
  await vi.advanceTimersByTimeAsync(49);
  expect(seqs(member)).toHaveLength(2);
  await vi.advanceTimersByTimeAsync(1);
  expect(seqs(member)).toEqual([[1, 2, 3], [4, 5, 6], [7, 8]]);
});

test("batches keep 1000 / maxBatchesPerSecond ms apart, full or not", async () => {
  const { p, member } = await pipeline({ maxSize: 2, maxBatchesPerSecond: 10 });
  commit(p, 2);
  expect(seqs(member)).toEqual([[1, 2]]);
  commit(p, 2);
  await vi.advanceTimersByTimeAsync(99);
  expect(seqs(member)).toEqual([[1, 2]]);
  await vi.advanceTimersByTimeAsync(1);
  expect(seqs(member)).toEqual([[1, 2], [3, 4]]);
  // A later change that finds the interval over goes at once.
  await vi.advanceTimersByTimeAsync(500);
  commit(p, 1);
  expect(seqs(member)).toEqual([[1, 2], [3, 4], [5]]);
});

test("changes the hub did not offer are read from the stream, in order, before the one it did", async () => {
  const { p, member } = await pipeline({ maxWaitMs: 10 });
  feeds.append(ID, 3);
  commit(p, 1);
  await vi.advanceTimersByTimeAsync(10);
  expect(seqs(member)).toEqual([[1, 2, 3, 4]]);
});

test("a member that takes nothing for stallMs while more than its bound waits is ended with a resync, not before", async () => {
  // 6 changes queued for it (over half the bound of 10), so a read of missed changes waits for room.
  const { p, member } = await pipeline({ maxSize: 6 }, { changes: 10, stallMs: 1_000 });
  commit(p, 6);
  feeds.append(ID, 3);
  commit(p, 1);
  await vi.advanceTimersByTimeAsync(0);
  // 6 queued and 5 in the stream: over the bound, but it has only been 0 ms.
  commit(p, 1);
  await vi.advanceTimersByTimeAsync(999);
  commit(p, 1);
  expect(seqs(member)).toEqual([[1, 2, 3, 4, 5, 6]]);

  await vi.advanceTimersByTimeAsync(1);
  commit(p, 1);
  const resync = [{ contextId: ID, seq: 0, version: 0 }];
  expect(member.undelivered).toEqual([
    { changes: [], resync, bytes: 0 },
    { changes: [], resync: [], bytes: 0, ended: { after: [{ contextId: ID, seq: 0 }], reason: "behind" } },
  ]);
});
