import { ErrorCode } from "../src/errors.js";
import { builder } from "./builder.js";

const DESCRIPTIONS: Record<ErrorCode, string> = {
  NOT_FOUND: "The context, version, snapshot or allocation does not exist (or is no longer retained).",
  ALREADY_EXISTS: "A context with this id exists already.",
  VERSION_CONFLICT: "expectedVersion is not the current version; extensions.currentVersion tells it.",
  INVALID_PATCH: "A JSON Patch operation failed (bad path, missing value, failed test); extensions.operationIndex names it.",
  VALIDATION_FAILED:
    "An argument or the resulting document breaks a rule. extensions.problems lists every problem found in the input, `[{path, message}]` (at least one, at most 100); extensions.path and the error's message are the first problem's. A path is a JSON Pointer into the document for document rules, an argument name otherwise.",
  INSUFFICIENT_RESOURCES:
    "The budget cannot cover the request; extensions.available gives what can be had per kind, extensions.requested what was asked for (a profile's amounts included).",
  USAGE_EXCEEDED: "Reported usage would exceed what the allocation may still spend.",
  ALLOCATION_ENDED: "The allocation was released or expired (its lease, or an ancestor's, ran out); extensions.status tells which.",
  LOCK_HELD: "Another holder has the lock; extensions.holder and extensions.expiresAt tell who and until when.",
  STALE_FENCE: "The fencing token is not the lock's current token.",
  UNAUTHENTICATED: "No valid credentials were given.",
  FORBIDDEN: "The credentials do not allow this operation on this context.",
  RATE_LIMITED: "Too many requests; try again later.",
  LIMIT_EXCEEDED: "A size, depth or cost bound was exceeded; extensions.limit names which.",
  RESYNC_REQUIRED: "The changes asked for are older than what is retained; re-read the context.",
  UNAVAILABLE: "The store is unreachable or its state was lost.",
};

/** The ErrorCode enum, for fields that report a refusal's code. */
export const ErrorCodeEnum = builder.enumType("ErrorCode", {
  description:
    "The `extensions.code` of every refusal. A refused operation changes nothing. Unexpected faults are masked as INTERNAL_SERVER_ERROR.",
  values: Object.fromEntries(
    Object.values(ErrorCode).map((code) => [code, { value: code, description: DESCRIPTIONS[code] }]),
  ),
});
