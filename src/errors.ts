/**
 * Error codes of API.md. Lua scripts return the same strings in `{"error": CODE, ...}` replies,
 * so a code means the same thing wherever it is raised.
 */
export enum ErrorCode {
  NOT_FOUND = "NOT_FOUND",
  ALREADY_EXISTS = "ALREADY_EXISTS",
  VERSION_CONFLICT = "VERSION_CONFLICT",
  INVALID_PATCH = "INVALID_PATCH",
  VALIDATION_FAILED = "VALIDATION_FAILED",
  INSUFFICIENT_RESOURCES = "INSUFFICIENT_RESOURCES",
  USAGE_EXCEEDED = "USAGE_EXCEEDED",
  ALLOCATION_ENDED = "ALLOCATION_ENDED",
  LOCK_HELD = "LOCK_HELD",
  STALE_FENCE = "STALE_FENCE",
  UNAUTHENTICATED = "UNAUTHENTICATED",
  FORBIDDEN = "FORBIDDEN",
  RATE_LIMITED = "RATE_LIMITED",
  LIMIT_EXCEEDED = "LIMIT_EXCEEDED",
  RESYNC_REQUIRED = "RESYNC_REQUIRED",
  UNAVAILABLE = "UNAVAILABLE",
}

/** Extra facts a client needs to act on a refusal, sent as `extensions` beside `code`. */
export type ErrorDetails = Readonly<Record<string, unknown>>;

/** A refusal the client caused or can act on; anything else is masked as an internal error. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
  ) {
    super(message);
    this.name = "AppError";
  }

  /** graphql-js copies an original error's `extensions` onto the GraphQL error it reports. */
  get extensions(): Record<string, unknown> {
    return { ...this.details, code: this.code };
  }
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

/** A script's refusal: `{"error": CODE, "message": "...", ...details}`. */
export interface ScriptRefusal {
  readonly error: string;
  readonly message?: string;
  readonly [detail: string]: unknown;
}

/**
 * The one mapper from a Lua script's refusal to an AppError. Throws a plain Error (masked as an
 * internal fault) when the script returned a code API.md does not know, which is a server bug.
 */
export function refusalToError(refusal: ScriptRefusal): AppError {
  const { error, message, ...details } = refusal;
  if (!KNOWN_CODES.has(error)) throw new Error(`script returned unknown error code ${error}`);
  return new AppError(error as ErrorCode, message ?? error, details);
}

/**
 * The JSON body of a refusal answered outside GraphQL execution (HTTP edge, WebSocket upgrade),
 * shaped like GraphQL's errors so that clients read one format.
 */
export function refusalBody(message: string, extensions: Record<string, unknown>): string {
  return JSON.stringify({ errors: [{ message, extensions }] });
}
