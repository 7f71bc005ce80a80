import type { RedisClient } from "../redis/clients.js";
import type { Keys } from "../redis/keys.js";
import { scriptsOf } from "../redis/scripts.js";

/** How a rate limit is set: see Config rateLimit, rateWindowMs and rateLeasePercent. */
export interface RateLimitSettings {
  /** Requests one key may make per window, across every instance; 0: no limit. */
  readonly limit: number;
  /** The window, in ms. */
  readonly windowMs: number;
  /** The largest lease, in percent of `limit` (rounded down). */
  readonly leasePercent: number;
}

/** What the limiter answers for one request. */
export type RateDecision =
  | { readonly admitted: true }
  | { readonly admitted: false; readonly retryAfterMs: number }
  /** The call to Redis failed, with this error. */
  | { readonly admitted: "unknown"; readonly error: unknown };

interface Waiter {
  readonly settle: (decision: RateDecision) => void;
}

/** One key's window as this instance knows it. */
interface KeyWindow {
  /** The window's id (its start, as Redis has it); null: none known. */
  start: string | null;
  /** Local time (performance.now) before which the window surely lasts: when the call that told its TTL was sent, plus the TTL. */
  surelyOpenUntil: number;
  /** Local time after which the window surely ended: when that answer arrived, plus the TTL. */
  surelyOverAt: number;
  /** Requests this instance may still admit in the window without asking. */
  lease: number;
  /** Requests admitted from leases and not yet reported. */
  unreported: number;
  /** The lease to ask for next: doubles with each lease in a window, up to the largest. */
  nextLease: number;
  /** Redis answered that the window is full. */
  full: boolean;
  /** Requests waiting for the call in flight, or for the next one. */
  readonly waiting: Waiter[];
  calling: boolean;
}

const ADMITTED: RateDecision = { admitted: true };

/**
 * A key's rate limit shared by every instance, with far fewer Redis calls than requests. Each
 * key's window lives in Redis (lua/rate-lease-1.lua); an instance leases requests of it and
 * admits them locally until the window ends, reporting them with its next call. A key is refused
 * only once the window's count of admitted requests reached the limit; each other instance can
 * admit at most its current lease (at most `leasePercent` of the limit) beyond it
 * (docs/decisions/rate-limiter.md). Leases start at 1 in each window and double per lease, so
 * an instance that serves a key rarely holds a lease as small as its use. Requests that arrive
 * while a call is in flight wait for it and are then taken together by one call.
 */
export class RateLimiter {
  private readonly windows = new Map<string, KeyWindow>();
  private readonly largestLease: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly settings: RateLimitSettings,
  ) {
    this.largestLease = Math.floor((settings.limit * settings.leasePercent) / 100);
  }

  /**
   * Counts one request of the key `keyName`: admitted, refused with the ms until its window ends,
   * or unknown when the call to Redis failed (all the requests that waited on that call get the
   * same answer). Never rejects.
   */
  admit(keyName: string): Promise<RateDecision> | RateDecision {
    let window = this.windows.get(keyName);
    if (!window) {
      window = { start: null, surelyOpenUntil: 0, surelyOverAt: 0, lease: 0, unreported: 0, nextLease: 1, full: false, waiting: [], calling: false };
      this.windows.set(keyName, window);
    }
    // The fast path: no Redis call while the lease lasts, or while the window is known full.
    const now = performance.now();
    if (!window.calling && now < window.surelyOpenUntil) {
      if (window.lease > 0) {
        window.lease--;
        window.unreported++;
        return ADMITTED;
      }
      if (window.full) return { admitted: false, retryAfterMs: retryAfter(window, now) };
    }
    const w = window;
    return new Promise<RateDecision>((settle) => {
      w.waiting.push({ settle });
      if (!w.calling) void this.pump(keyName, w);
    });
  }

  /** Answers the waiting requests of `window`, from its lease or with one Redis call per round, until none waits. */
  private async pump(keyName: string, window: KeyWindow): Promise<void> {
    window.calling = true;
    try {
      for (;;) {
        const now = performance.now();
        if (now >= window.surelyOpenUntil) {
          // The window may have ended: what was admitted in it is not reported to the next.
          window.start = null;
          window.lease = 0;
          window.unreported = 0;
          window.full = false;
        }
        while (window.waiting.length > 0 && window.lease > 0) {
          window.lease--;
          window.unreported++;
          window.waiting.shift()!.settle(ADMITTED);
        }
        if (window.waiting.length > 0 && window.full) {
          const refused: RateDecision = { admitted: false, retryAfterMs: retryAfter(window, now) };
          for (const waiter of window.waiting.splice(0)) waiter.settle(refused);
        }
        if (window.waiting.length === 0) return;
        await this.call(keyName, window);
      }
    } finally {
      window.calling = false;
    }
  }

  /** One Redis call: reports what `window` admitted from its lease, takes the requests waiting now and asks for the next lease. */
  private async call(keyName: string, window: KeyWindow): Promise<void> {
    const waiting = window.waiting.length;
    const wanted = Math.min(this.largestLease, window.nextLease);
    const sentAt = performance.now();
    let reply: [number, number, string, number];
    try {
      reply = await scriptsOf(this.redis).rateLease(
        this.keys.rate(keyName),
        this.settings.limit,
        this.settings.windowMs,
        window.start ?? "",
        window.unreported,
        waiting,
        wanted,
      );
    } catch (error) {
      const unknown: RateDecision = { admitted: "unknown", error };
      for (const waiter of window.waiting.splice(0, waiting)) waiter.settle(unknown);
      return;
    }
    const receivedAt = performance.now();
    const [taken, ttlMs, start, lease] = reply;
    if (start !== window.start) window.nextLease = 1;
    window.start = start;
    window.unreported = 0;
    window.surelyOpenUntil = sentAt + ttlMs;
    window.surelyOverAt = receivedAt + ttlMs;
    window.lease = lease;
    window.full = taken < waiting;
    if (lease > 0) window.nextLease = Math.min(this.largestLease, Math.max(1, lease) * 2);
    const answered = window.waiting.splice(0, waiting);
    const refused: RateDecision = { admitted: false, retryAfterMs: retryAfter(window, receivedAt) };
    answered.forEach((waiter, i) => waiter.settle(i < taken ? ADMITTED : refused));
  }
}

/** Ms until `window` surely ended, at least 1 (a refusal always tells the client to wait). */
function retryAfter(window: KeyWindow, now: number): number {
  return Math.max(1, Math.ceil(window.surelyOverAt - now));
}
