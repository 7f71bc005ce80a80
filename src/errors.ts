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

/**
 * The codes of a ledger operation that mean "the ledger said no" (the budget, what an allocation
 * may still spend, an ended allocation), as opposed to a malformed or unauthorized call: counted
 * in swarm_ledger_refusals_total and sent to ledgerRefusals subscribers.
 */
export const LEDGER_REFUSALS: ReadonlySet<string> = new Set([ErrorCode.INSUFFICIENT_RESOURCES, ErrorCode.USAGE_EXCEEDED, ErrorCode.ALLOCATION_ENDED]);

/** Extra facts a client needs to act on a refusal, sent as `extensions` beside `code`. */
export type ErrorDetails = Readonly<Record<string, unknown>>;

/**
 * `extensions` as sent: a VALIDATION_FAILED without `problems` (one raised with a single path by
 * an argument check, a Lua reply, a malformed request) gets itself as its only problem, so that
 * every VALIDATION_FAILED lists at least one.
 */
export function withProblems(message: string, extensions: Record<string, unknown>): Record<string, unknown> {
  if (extensions.code !== ErrorCode.VALIDATION_FAILED || Array.isArray(extensions.problems)) return extensions;
  const path = typeof extensions.path === "string" ? extensions.path : "";
  return { ...extensions, problems: [{ path, message }] };
}

/** One thing wrong with an input: where (a JSON Pointer into a document, or an argument name) and what. */
export interface Problem {
  readonly path: string;
  readonly message: string;
}

/** Most problems one VALIDATION_FAILED lists: past this, checking stops. */
export const MAX_PROBLEMS = 100;

/**
 * A VALIDATION_FAILED listing every problem found (at least one): `path` and the message are the
 * first problem's, `problems` lists them all (at most MAX_PROBLEMS).
 */
export function validationFailed(problems: readonly Problem[], details: ErrorDetails = {}): AppError {
  const [first] = problems;
  if (!first) throw new Error("validationFailed needs at least one problem");
  return new AppError(ErrorCode.VALIDATION_FAILED, first.message, { ...details, path: first.path, problems: problems.slice(0, MAX_PROBLEMS) });
}

/**
 * Runs every check of one input, even after one fails, and throws one VALIDATION_FAILED listing
 * the problems of every check that threw one (in order). Any other error is thrown as it is.
 */
export function checkAll(...checks: (() => unknown)[]): void {
  const problems: Problem[] = [];
  for (const check of checks) {
    try {
      check();
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== ErrorCode.VALIDATION_FAILED) throw err;
      problems.push(...(err.extensions.problems as Problem[]));
    }
  }
  if (problems.length > 0) throw validationFailed(problems);
}

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
    // Every VALIDATION_FAILED lists its problems; one raised with a single path (argument checks,
    // Lua replies) is its own only problem.
    return withProblems(this.message, { ...this.details, code: this.code });
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
  return JSON.stringify({ errors: [{ message, extensions: withProblems(message, extensions) }] });
}
