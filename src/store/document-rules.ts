import { AppError, ErrorCode, MAX_PROBLEMS, validationFailed, type Problem } from "../errors.js";
import { isJsonObject, jsonDepth, type JsonObject, type JsonValue } from "../json/types.js";
import { LEASE_MS_MAX, PROFILE_NAME, RESOURCE_KIND } from "../model/identifiers.js";

export interface DocumentLimits {
  readonly maxDocumentBytes: number;
  readonly maxDocumentDepth: number;
}

/** Where the checks of one input note what they find; past MAX_PROBLEMS they note nothing more. */
class Problems {
  readonly list: Problem[] = [];

  add(path: string, message: string): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push({ path, message: `${path || "document"}: ${message}` });
  }

  /** VALIDATION_FAILED listing every problem noted, if any. */
  throwIfAny(): void {
    if (this.list.length > 0) throw validationFailed(this.list);
  }
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

function checkAmounts(value: JsonValue | undefined, path: string, problems: Problems): void {
  if (value === undefined) return;
  if (!isJsonObject(value)) return problems.add(path, "must be an object of resource kind to amount");
  for (const [kind, amount] of Object.entries(value)) {
    if (!RESOURCE_KIND.test(kind)) problems.add(`${path}/${kind}`, `resource kind must match ${RESOURCE_KIND.source}`);
    if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount < 0) {
      problems.add(`${path}/${kind}`, "amount must be an integer from 0 to 2^53 - 1");
    }
  }
}

/** The deepest `policy.allocation.maxDepth`: the largest GraphQL Int, the type of `tier`. */
const MAX_DEPTH_MAX = 2 ** 31 - 1;

function checkInteger(value: JsonValue | undefined, path: string, max: number, problems: Problems): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > max) {
    problems.add(path, `must be an integer from 1 to ${max}`);
  }
}

function checkAllocationPolicy(policy: JsonValue | undefined, problems: Problems): void {
  const base = "/policy/allocation";
  if (policy === undefined) return;
  if (!isJsonObject(policy)) return problems.add(base, "must be an object");
  const { maxShare, defaultLeaseMs, maxDepth, profiles } = policy;
  if (maxShare !== undefined && (typeof maxShare !== "number" || !(maxShare > 0 && maxShare <= 1))) {
    problems.add(`${base}/maxShare`, "must be a number with 0 < maxShare <= 1");
  }
  // Bounded as the arguments they stand in for: a value every reader can format later.
  checkInteger(defaultLeaseMs, `${base}/defaultLeaseMs`, LEASE_MS_MAX, problems);
  checkInteger(maxDepth, `${base}/maxDepth`, MAX_DEPTH_MAX, problems);
  if (profiles === undefined) return;
  if (!isJsonObject(profiles)) return problems.add(`${base}/profiles`, "must be an object of profile name to profile");
  for (const [name, profile] of Object.entries(profiles)) {
    const at = `${base}/profiles/${name}`;
    if (!PROFILE_NAME.test(name)) problems.add(at, `profile name must match ${PROFILE_NAME.source}`);
    if (!isJsonObject(profile)) {
      problems.add(at, "must be an object with request and optional leaseMs");
      continue;
    }
    if (profile.request === undefined) problems.add(`${at}/request`, "is required");
    checkAmounts(profile.request, `${at}/request`, problems);
    checkInteger(profile.leaseMs, `${at}/leaseMs`, LEASE_MS_MAX, problems);
  }
}

/**
 * Checks a document against API.md's rules (an object; `resources.limits` and
 * `policy.allocation` well-formed). Throws VALIDATION_FAILED listing every rule it breaks
 * (extensions.problems, at most MAX_PROBLEMS; `path` is the first's).
 */
export function checkRules(document: JsonValue): asserts document is JsonObject {
  if (!isJsonObject(document)) throw validationFailed([{ path: "", message: "document: must be a JSON object" }]);
  const problems = new Problems();
  const resources = document.resources;
  if (resources !== undefined) {
    if (!isJsonObject(resources)) problems.add("/resources", "must be an object");
    else checkAmounts(resources.limits, "/resources/limits", problems);
  }
  const policy = document.policy;
  if (policy !== undefined) {
    if (!isJsonObject(policy)) problems.add("/policy", "must be an object");
    else checkAllocationPolicy(policy.allocation, problems);
  }
  problems.throwIfAny();
}

/** Throws LIMIT_EXCEEDED (limit "size") when a document's JSON is larger than the limit allows. */
export function checkSize(bytes: number, limits: DocumentLimits): void {
  if (bytes > limits.maxDocumentBytes) {
    throw new AppError(ErrorCode.LIMIT_EXCEEDED, `document is ${bytes} bytes; the limit is ${limits.maxDocumentBytes}`, {
      limit: "size",
      max: limits.maxDocumentBytes,
      actual: bytes,
    });
  }
}
