import type { RedisClient } from "../redis/clients.js";
import { OPEN_PRINCIPAL, type KeyRing, type Principal } from "./auth.js";
import { AppError, ErrorCode } from "../errors.js";
import type { ReportFault } from "../observability/faults.js";
import { isConnectionFailure } from "../redis/clients.js";
import type { Keys } from "../redis/keys.js";
import { scriptsOf } from "../redis/scripts.js";

const RATE_WINDOW_MS = 1_000;
const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * What every request passes before it is parsed, on every transport: who is asking (the API key)
 * and the key's rate limit. (Roles, scopes and Redis's state are checked per root field:
 * resolvers/access.ts.)
 */
export class Gate {
  constructor(
    private readonly keyRing: KeyRing | null,
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    /** Requests per key per second across instances; 0: none. */
    private readonly rateLimit: number,
    private readonly fault: ReportFault,
  ) {}

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
   * it is over the limit. When Redis is unreachable or stalled, the request passes: the operation
   * itself then meets Redis and fails or succeeds on its own. When counting fails otherwise, the
   * fault is reported and the request refused with UNAVAILABLE.
   */
  async admit(principal: Principal): Promise<void> {
    if (this.rateLimit === 0) return;
    let reply: [number, number];
    try {
      reply = await scriptsOf(this.redis).rateLimit(this.keys.rate(principal.name), this.rateLimit, RATE_WINDOW_MS);
    } catch (err) {
      if (isConnectionFailure(err)) return;
      this.fault("rate-limit", "rate limit check failed; request refused", err, { actor: principal.name });
      throw new AppError(ErrorCode.UNAVAILABLE, "the rate limit could not be checked; retry later", {});
    }
    if (reply[0] === 1) return;
    throw new AppError(ErrorCode.RATE_LIMITED, `key ${principal.name} is over its limit of ${this.rateLimit} requests per second`, {
      retryAfterMs: reply[1],
    });
  }
}
