import { backoffMs, sleep, type RetryOptions } from "./backoff.js";
import type { SwarmError } from "./errors.js";
import type { ChangeKind, ClientChangeFragment } from "./operations.js";
import type { SubscriptionEvent, SubscriptionTransport } from "./subscriptions.js";
import type { OperationName, Result, Variables } from "./transport.js";

/** One change of the context's feed (API.md, ContextChange). */
export type Change = ClientChangeFragment;

/** Changes up to `seq` will not be delivered (lost to retention): re-read the context, which was at `version` as of `seq`. */
export interface Resync {
  readonly resync: { readonly contextId: string; readonly seq: number; readonly version: number };
}

/** What `watch` yields: a change, or a resync notice where changes were lost. */
export type WatchItem = Change | Resync;

/** The watched paths' values as of one version (API.md, watchSlice). */
export interface SliceUpdate {
  readonly version: number;
  readonly seq: number;
  /** JSON Pointer -> value (null where a path does not resolve). */
  readonly slice: Record<string, unknown>;
}

/** Filters and delivery options of `watch` (API.md, contextChanges). */
export interface WatchOptions {
  /** Start after this seq (replaying what followed it); default: the context's seq now. */
  readonly after?: number;
  readonly paths?: readonly string[];
  readonly kinds?: readonly ChangeKind[];
  readonly actors?: readonly string[];
  readonly excludeActors?: readonly string[];
  readonly batch?: { readonly maxSize?: number; readonly maxWaitMs?: number };
  readonly maxBatchesPerSecond?: number;
  /** Ends the iteration (as `break` does). */
  readonly signal?: AbortSignal;
  /** Changes received and not yet taken before the subscription pauses (default 1000; see DEFAULT_MAX_BUFFERED). */
  readonly maxBuffered?: number;
}

/**
 * Items received and not yet taken by the consumer, by default at most this many: past it the
 * subscription is closed, and opened again from the cursor once they are taken, so a slow
 * consumer costs neither side memory and loses nothing.
 */
export const DEFAULT_MAX_BUFFERED = 1000;

/** Where a resumable subscription stands: what it asks for next, and what it has seen. */
export interface Resumption<N extends OperationName, T> {
  /** The variables to (re)subscribe with, from what has been yielded so far. */
  variables(): Variables<N>;
  /** The items one result yields (moving the position past them), in order; duplicates left out. */
  items(data: Result<N>): T[];
  /** A resumable error may carry a position to continue from (RESYNC_REQUIRED's extensions.after). */
  resumeFrom?(error: SwarmError): void;
}

/**
 * Yields what subscription `name` delivers, subscribing again (after a backoff when the
 * cause was a failure) whenever it ends resumably: a network error, a server instance that
 * shuts down or dies, RESYNC_REQUIRED. Throws the error of a refusal no retry cures.
 */
export async function* resumable<N extends OperationName, T>(
  transport: SubscriptionTransport,
  name: N,
  position: Resumption<N, T>,
  retry: RetryOptions,
  options: { readonly signal?: AbortSignal; readonly maxBuffered?: number },
): AsyncGenerator<T, void, undefined> {
  const { signal, maxBuffered = DEFAULT_MAX_BUFFERED } = options;
  let failures = 0;
  while (!signal?.aborted) {
    // Items in the order received; the position moves as they arrive, so a resubscription
    // continues after the last one buffered, and a failure is handled after those before it.
    const inbox: ({ item: T } | Exclude<SubscriptionEvent<Result<N>>, { data: unknown }>)[] = [];
    let wake: (() => void) | undefined;
    let paused = false;
    let stop: (() => void) | undefined;
    const push = (event: SubscriptionEvent<Result<N>>) => {
      if (paused) return;
      if ("data" in event) {
        for (const item of position.items(event.data)) inbox.push({ item });
        if (inbox.length >= maxBuffered) {
          paused = true;
          stop?.();
        }
      } else inbox.push(event);
      wake?.();
    };
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort);
    try {
      stop = await transport.open(name, position.variables(), push);
      let failed = false;
      for (;;) {
        if (inbox.length === 0) {
          if (paused || signal?.aborted) break;
          await new Promise<void>((resolve) => (wake = resolve));
          continue;
        }
        const event = inbox.shift()!;
        if ("item" in event) {
          failures = 0;
          yield event.item;
          if (signal?.aborted) return;
          continue;
        }
        if ("error" in event) {
          if (!event.resumable) throw event.error;
          position.resumeFrom?.(event.error);
          failed = event.error.code !== "RESYNC_REQUIRED";
        } else {
          // Completed by the server: resubscribe, but not in a tight loop.
          failed = true;
        }
        break;
      }
      if (failed) await sleep(backoffMs(retry, failures++), signal);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      stop?.();
    }
  }
}

/** The position of a `watch`: the last seq yielded, per the context's feed. */
export function changesPosition(id: string, options: WatchOptions, start: number): Resumption<"ClientChanges", WatchItem> {
  let cursor = start;
  return {
    variables: () => ({
      id,
      after: [{ contextId: id, seq: cursor }],
      paths: options.paths ? [...options.paths] : null,
      kinds: options.kinds ? [...options.kinds] : null,
      actors: options.actors ? [...options.actors] : null,
      excludeActors: options.excludeActors ? [...options.excludeActors] : null,
      batch: options.batch ?? null,
      maxBatchesPerSecond: options.maxBatchesPerSecond ?? null,
    }),
    items: ({ contextChanges }) => {
      const items: WatchItem[] = [];
      for (const resync of contextChanges.resync) {
        if (resync.contextId !== id) continue;
        cursor = Math.max(cursor, resync.seq);
        items.push({ resync });
      }
      for (const change of contextChanges.changes) {
        if (change.seq <= cursor) continue;
        cursor = change.seq;
        items.push(change);
      }
      return items;
    },
    resumeFrom: (error) => {
      const after = error.extensions.after as { contextId: string; seq: number }[] | undefined;
      const mine = after?.find((c) => c.contextId === id);
      if (mine) cursor = Math.max(cursor, mine.seq);
    },
  };
}

/** The position of a `watchSlice`: the seq of the last value yielded. */
export function slicePosition(id: string, paths: readonly string[], maxUpdatesPerSecond: number | undefined): Resumption<"ClientWatchSlice", SliceUpdate> {
  let seen = -1;
  return {
    variables: () => ({ id, paths: [...paths], maxUpdatesPerSecond: maxUpdatesPerSecond ?? null }),
    items: ({ watchSlice }) => {
      if (watchSlice.seq <= seen) return [];
      seen = watchSlice.seq;
      return [watchSlice as SliceUpdate];
    },
  };
}
