import { backoffMs, sleep, type RetryOptions } from "./backoff.js";
import { SwarmError } from "./errors.js";
import { LeaseKeeper } from "./lease.js";
import type { PatchOperation } from "./diff.js";
import type { WriteOptions, WriteResult } from "./swarm.js";

/** The lock a `withLock` section holds. */
export interface HeldLock {
  readonly name: string;
  readonly holder: string;
  /** The fencing token: strictly increasing per (context, name). */
  readonly token: number;
  /** When the lease ends unless renewed (renewals move it on). */
  readonly expiresAt: string;
  /**
   * Resolves (never rejects) with the reason once the lease is lost: a renewal was refused
   * (another holder has the lock, or the lease ran out while this process was stalled), or
   * renewals kept failing until the lease ran out. Never resolves while the lock is held.
   */
  readonly lost: Promise<SwarmError>;
  /** Aborted when the lease is lost (reason: the SwarmError), for APIs that take a signal. */
  readonly signal: AbortSignal;
  /** patch with this lock's fence: refused with STALE_FENCE once another holder has the lock. */
  patch(ops: readonly PatchOperation[], options?: Omit<WriteOptions, "fence">): Promise<WriteResult>;
  /** merge with this lock's fence: refused with STALE_FENCE once another holder has the lock. */
  merge(value: Record<string, unknown>, options?: Omit<WriteOptions, "fence">): Promise<WriteResult>;
}

/** Options of `withLock`. */
export interface LockOptions {
  /** The lease, renewed in the background every third of it (default 10,000 ms). */
  readonly leaseMs?: number;
  /** Who holds it (default: the client's `agent`). */
  readonly holder?: string;
  /** Give up acquiring after this long, with the last LOCK_HELD (default: wait as long as it takes). */
  readonly waitMs?: number;
  /** Stop waiting to acquire when aborted (throws the signal's reason). */
  readonly signal?: AbortSignal;
}

/** The server calls withLock makes, bound to one context. */
export interface LockCalls {
  acquire(name: string, holder: string, leaseMs: number): Promise<{ token: number; expiresAt: string; holder: string }>;
  renew(name: string, token: number, leaseMs: number): Promise<{ expiresAt: string }>;
  release(name: string, token: number): Promise<unknown>;
  patch(ops: readonly PatchOperation[], options: WriteOptions): Promise<WriteResult>;
  merge(value: Record<string, unknown>, options: WriteOptions): Promise<WriteResult>;
}

export const DEFAULT_LEASE_MS = 10_000;

/** Renewal refusals that mean the lock is no longer this holder's. */
const LOCK_GONE: ReadonlySet<string> = new Set(["STALE_FENCE", "NOT_FOUND"]);

/** The longest wait between two attempts to acquire a held lock, in ms. */
const ACQUIRE_POLL_MS = 100;

/**
 * Acquires lock `name` (waiting with backoff while LOCK_HELD, until `waitMs`), runs `fn` while
 * renewing the lease every third of it, then releases the lock, whether `fn` returned or threw.
 * Returns what `fn` returns. Fencing is what makes it safe: a holder that stalls past its lease
 * is not stopped by this function, but its fenced writes are refused.
 */
export async function withLock<T>(calls: LockCalls, name: string, fn: (lock: HeldLock) => Promise<T> | T, options: LockOptions & { readonly holder: string }, retry: RetryOptions): Promise<T> {
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const granted = await acquire(calls, name, options.holder, leaseMs, options, retry);
  const fence = { lock: name, token: granted.token };
  const lease = new LeaseKeeper(
    leaseMs,
    granted.expiresAt,
    async () => (await calls.renew(name, granted.token, leaseMs)).expiresAt,
    LOCK_GONE,
    `lock ${name}`,
  );
  const lock: HeldLock = {
    name,
    holder: granted.holder,
    token: granted.token,
    get expiresAt() {
      return lease.expiresAt;
    },
    lost: lease.lost,
    signal: lease.signal,
    patch: (ops, writeOptions) => calls.patch(ops, { ...writeOptions, fence }),
    merge: (value, writeOptions) => calls.merge(value, { ...writeOptions, fence }),
  };
  try {
    return await fn(lock);
  } finally {
    await lease.stop(new SwarmError("STALE_FENCE", `lock ${name} was released`));
    await calls.release(name, granted.token).catch((err: unknown) => {
      // Lost already (STALE_FENCE) or the context is gone: nothing is held.
      if (!(err instanceof SwarmError) || !LOCK_GONE.has(err.code)) throw err;
    });
  }
}

async function acquire(calls: LockCalls, name: string, holder: string, leaseMs: number, options: LockOptions, retry: RetryOptions) {
  const deadline = options.waitMs === undefined ? Infinity : Date.now() + options.waitMs;
  for (let failures = 0; ; failures++) {
    options.signal?.throwIfAborted();
    try {
      return await calls.acquire(name, holder, leaseMs);
    } catch (err) {
      if (!(err instanceof SwarmError) || err.code !== "LOCK_HELD") throw err;
      // Wait with backoff, but at most ACQUIRE_POLL_MS (a holder's section is often short) and
      // never past the holder's lease, which may lapse unreleased.
      const untilFree = Math.max(0, Date.parse(String(err.extensions.expiresAt)) - Date.now());
      const wait = Math.min(backoffMs(retry, failures), ACQUIRE_POLL_MS, untilFree);
      if (Date.now() + wait > deadline) throw err;
      await sleep(wait, options.signal);
    }
  }
}
