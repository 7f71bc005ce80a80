import type { RedisClient } from "../redis/clients.js";
import { OPEN_PRINCIPAL, type KeyRing, type Principal } from "./auth.js";
import { AppError, ErrorCode } from "../errors.js";
import type { ReportFault } from "../observability/faults.js";
import { isConnectionFailure } from "../redis/clients.js";
import type { Keys } from "../redis/keys.js";
import { RateLimiter, type RateLimitSettings } from "./rate-limiter.js";

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * What every request passes before it is parsed, on every transport: who is asking (the API key)
 * and the key's rate limit. (Roles, scopes and Redis's state are checked per root field:
 * resolvers/access.ts.)
 */
export class Gate {
  private readonly limiter: RateLimiter | null;

  constructor(
    private readonly keyRing: KeyRing | null,
    redis: RedisClient,
    keys: Keys,
    /** Each key's rate limit across instances; a limit of 0: none. */
    private readonly rate: RateLimitSettings,
    private readonly fault: ReportFault,
  ) {
    this.limiter = rate.limit === 0 ? null : new RateLimiter(redis, keys, rate);
  }

  /**
   * The principal presenting `authorization` (an HTTP header value, or graphql-ws's
   * connectionParams.authorization): `Bearer <key>`. Throws UNAUTHENTICATED when keys are
   * configured and it is missing, malformed or not a configured key.
   */
  authenticate(authorization: unknown): Principal {
    if (this.keyRing === null) return OPEN_PRINCIPAL;
    const match = typeof authorization === "string" ? BEARER.exec(authorization) : null;
    if (!match) throw new AppError(ErrorCode.UNAUTHENTICATED, "send an API key: Authorization: Bearer <key>", {});
    const principal = this.keyRing.principalOf(match[1]!);
    if (!principal) throw new AppError(ErrorCode.UNAUTHENTICATED, "this API key is not valid", {});
    return principal;
  }

  /**
   * Counts one request of `principal`, or throws RATE_LIMITED (with extensions.retryAfterMs) when
   * it is over the limit. Most requests are counted without a Redis call (see RateLimiter). When
   * Redis is unreachable or stalled, the request passes: the operation itself then meets Redis and
   * fails or succeeds on its own. When counting fails otherwise, the fault is reported and the
   * request refused with UNAVAILABLE.
   */
  async admit(principal: Principal): Promise<void> {
    if (this.limiter === null) return;
    const decision = await this.limiter.admit(principal.name);
    if (decision.admitted === true) return;
    if (decision.admitted === "unknown") {
      if (isConnectionFailure(decision.error)) return;
      this.fault("rate-limit", "rate limit check failed; request refused", decision.error, { actor: principal.name });
      throw new AppError(ErrorCode.UNAVAILABLE, "the rate limit could not be checked; retry later", {});
    }
    throw new AppError(ErrorCode.RATE_LIMITED, `key ${principal.name} is over its limit of ${this.rate.limit} requests per ${windowText(this.rate.windowMs)}`, {
      retryAfterMs: decision.retryAfterMs,
    });
  }
}

/** "second" for 1000 ms, else "<n> ms". */
function windowText(windowMs: number): string {
  return windowMs === 1_000 ? "second" : `${windowMs} ms`;
}
