import { parsePointer, pointersOverlap, valueAt } from "../json/pointer.js";
import { isJsonObject, type JsonObject } from "../json/types.js";

/**
 * The parts of a document the ledger's scripts read at every operation, flattened to
 * "field value field value ..." strings that the document scripts store in their own hashes
 * (DESIGN.md Redis rule 6: allocation must not cost O(document size)).
 */
export interface LedgerSettings {
  /** `resources.limits`: "kind amount ...". */
  readonly limits: string;
  /** `policy.allocation`: "maxShare x defaultLeaseMs n maxDepth n profile:<name> k,v,k,v profileLease:<name> n ...". */
  readonly policy: string;
}

const WATCHED_POINTERS = ["/resources/limits", "/policy/allocation"];
const WATCHED = WATCHED_POINTERS.map((p) => parsePointer(p)!);

/** True when a change to these paths may change the ledger settings. */
export function touchesLedgerSettings(paths: readonly string[]): boolean {
  return paths.some((path) => WATCHED_POINTERS.some((watched) => pointersOverlap(path, watched)));
}

function pairs(amounts: JsonObject): string[] {
  return Object.entries(amounts).flatMap(([kind, amount]) => [kind, String(amount)]);
}

/** Settings of a document that passed checkDocument (so every value has the right type). */
export function ledgerSettings(document: JsonObject): LedgerSettings {
  const limits = valueAt(document, WATCHED[0]!);
  const allocation = valueAt(document, WATCHED[1]!);
  const policy: string[] = [];
  if (isJsonObject(allocation)) {
    for (const field of ["maxShare", "defaultLeaseMs", "maxDepth"] as const) {
      if (allocation[field] !== undefined) policy.push(field, String(allocation[field]));
    }
    if (isJsonObject(allocation.profiles)) {
      for (const [name, profile] of Object.entries(allocation.profiles)) {
        if (!isJsonObject(profile) || !isJsonObject(profile.request)) continue;
        policy.push(`profile:${name}`, pairs(profile.request).join(",") || ",");
        if (profile.leaseMs !== undefined) policy.push(`profileLease:${name}`, String(profile.leaseMs));
      }
    }
  }
  return { limits: isJsonObject(limits) ? pairs(limits).join(" ") : "", policy: policy.join(" ") };
}
