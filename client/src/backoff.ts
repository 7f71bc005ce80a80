/** How a client waits between attempts: exponential, with full jitter, capped. */
export interface RetryOptions {
  /** Attempts per request, the first included (default 8). */
  readonly attempts: number;
  /** The first wait's upper bound in ms (default 50); it doubles per attempt. */
  readonly baseDelayMs: number;
  /** No wait longer than this, in ms (default 2000). */
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { attempts: 8, baseDelayMs: 50, maxDelayMs: 2000 };

/** A random wait in [0, min(maxDelayMs, baseDelayMs * 2^failures)) ms: racing clients spread out. */
export function backoffMs(retry: RetryOptions, failures: number): number {
  return Math.random() * Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** Math.min(failures, 30));
}

/**
 * Resolves after `ms`, or at once when `signal` aborts. A `background` wait (a lease renewal's)
 * does not keep the process alive by itself.
 */
export function sleep(ms: number, signal?: AbortSignal, background = false): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (background) timer.unref?.();
    signal?.addEventListener("abort", done, { once: true });
  });
}
