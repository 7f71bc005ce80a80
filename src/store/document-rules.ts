import { AppError, ErrorCode } from "../errors.js";
import { isJsonObject, jsonDepth, type JsonValue } from "../json/types.js";
import { LEASE_MS_MAX, PROFILE_NAME, RESOURCE_KIND } from "../model/identifiers.js";

export interface DocumentLimits {
  readonly maxDocumentBytes: number;
  readonly maxDocumentDepth: number;
}

function invalid(path: string, message: string): AppError {
  return new AppError(ErrorCode.VALIDATION_FAILED, `${path || "document"}: ${message}`, { path });
}

/** Throws LIMIT_EXCEEDED when a value given by a client nests deeper than the document may. */
export function checkDepth(value: JsonValue, limits: DocumentLimits, what: string): void {
  if (jsonDepth(value, limits.maxDocumentDepth) > limits.maxDocumentDepth) {
    throw new AppError(ErrorCode.LIMIT_EXCEEDED, `${what} nests deeper than ${limits.maxDocumentDepth} levels`, {
      limit: "depth",
      max: limits.maxDocumentDepth,
    });
  }
}

function checkAmounts(value: JsonValue | undefined, path: string): void {
  if (value === undefined) return;
  if (!isJsonObject(value)) throw invalid(path, "must be an object of resource kind to amount");
  for (const [kind, amount] of Object.entries(value)) {
    if (!RESOURCE_KIND.test(kind)) throw invalid(`${path}/${kind}`, `resource kind must match ${RESOURCE_KIND.source}`);
    if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount < 0) {
      throw invalid(`${path}/${kind}`, "amount must be an integer from 0 to 2^53 - 1");
    }
  }
}

/** The deepest `policy.allocation.maxDepth`: the largest GraphQL Int, the type of `tier`. */
const MAX_DEPTH_MAX = 2 ** 31 - 1;

function checkInteger(value: JsonValue | undefined, path: string, max: number): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw invalid(path, `must be an integer from 1 to ${max}`);
  }
}

function checkAllocationPolicy(policy: JsonValue | undefined): void {
  const base = "/policy/allocation";
  if (policy === undefined) return;
  if (!isJsonObject(policy)) throw invalid(base, "must be an object");
  const { maxShare, defaultLeaseMs, maxDepth, profiles } = policy;
  if (maxShare !== undefined && (typeof maxShare !== "number" || !(maxShare > 0 && maxShare <= 1))) {
    throw invalid(`${base}/maxShare`, "must be a number with 0 < maxShare <= 1");
  }
  // Bounded as the arguments they stand in for: a value every reader can format later.
  checkInteger(defaultLeaseMs, `${base}/defaultLeaseMs`, LEASE_MS_MAX);
  checkInteger(maxDepth, `${base}/maxDepth`, MAX_DEPTH_MAX);
  if (profiles === undefined) return;
  if (!isJsonObject(profiles)) throw invalid(`${base}/profiles`, "must be an object of profile name to profile");
  for (const [name, profile] of Object.entries(profiles)) {
    const at = `${base}/profiles/${name}`;
    if (!PROFILE_NAME.test(name)) throw invalid(at, `profile name must match ${PROFILE_NAME.source}`);
    if (!isJsonObject(profile)) throw invalid(at, "must be an object with request and optional leaseMs");
    if (profile.request === undefined) throw invalid(`${at}/request`, "is required");
    checkAmounts(profile.request, `${at}/request`);
    checkInteger(profile.leaseMs, `${at}/leaseMs`, LEASE_MS_MAX);
  }
}

/**
 * Checks a whole document against API.md's rules and the configured bounds, and returns its
 * serialization (the bytes to store). Throws VALIDATION_FAILED with the failing `path`, or
 * LIMIT_EXCEEDED with `limit` "size" or "depth".
 */
export function checkDocument(document: JsonValue, limits: DocumentLimits): string {
  if (!isJsonObject(document)) throw invalid("", "must be a JSON object");
  checkDepth(document, limits, "document");
  const resources = document.resources;
  if (resources !== undefined) {
    if (!isJsonObject(resources)) throw invalid("/resources", "must be an object");
    checkAmounts(resources.limits, "/resources/limits");
  }
  const policy = document.policy;
  if (policy !== undefined) {
    if (!isJsonObject(policy)) throw invalid("/policy", "must be an object");
    checkAllocationPolicy(policy.allocation);
  }
  const json = JSON.stringify(document);
  const bytes = Buffer.byteLength(json);
  if (bytes > limits.maxDocumentBytes) {
    throw new AppError(ErrorCode.LIMIT_EXCEEDED, `document is ${bytes} bytes; the limit is ${limits.maxDocumentBytes}`, {
      limit: "size",
      max: limits.maxDocumentBytes,
      actual: bytes,
    });
  }
  return json;
}

