/**
 * A refusal or failure, with the server's `extensions.code` (API.md, Errors) as `code`: for
 * example VERSION_CONFLICT (with `extensions.currentVersion`), LOCK_HELD, STALE_FENCE,
 * INSUFFICIENT_RESOURCES. UNAVAILABLE also stands for "no endpoint answered" once the retries
 * are spent; `cause` then holds the last network error.
 */
export class SwarmError extends Error {
  override readonly name = "SwarmError";

  constructor(
    readonly code: string,
    message: string,
    readonly extensions: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Refusals that say nothing about the request itself: the same request may succeed later. */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set(["UNAVAILABLE", "RATE_LIMITED"]);

/** The SwarmError of a GraphQL error object as the server sends it. */
export function errorOf(error: { message?: string; extensions?: Record<string, unknown> }): SwarmError {
  const extensions = error.extensions ?? {};
  const code = typeof extensions.code === "string" ? extensions.code : "INTERNAL_SERVER_ERROR";
  return new SwarmError(code, error.message ?? code, extensions);
}
