import { inScope } from "../security/auth.js";
import { pointersOverlap } from "../json/pointer.js";
import type { ChangeEntry } from "../model/change.js";

/** What a feed subscriber asked to see; an absent field does not restrict. */
export interface ChangeFilter {
  readonly contextIds: readonly string[] | null;
  readonly idPrefix: string | null;
  readonly paths: readonly string[] | null;
  readonly kinds: readonly string[] | null;
  readonly actors: readonly string[] | null;
  readonly excludeActors: readonly string[] | null;
  /** Context-id patterns of the subscriber's API key (auth.ts inScope); null: every context. */
  readonly scope: readonly string[] | null;
}

/** Kinds the path filter applies to: the ones that change part of the document. */
const PATH_FILTERED_KINDS = new Set(["UPDATED", "ROLLED_BACK"]);


/** Whether changes of `contextId` can match at all (contextIds, idPrefix and scope). */
export function wantsContext(filter: ChangeFilter, contextId: string): boolean {
  if (filter.contextIds && !filter.contextIds.includes(contextId)) return false;
  if (filter.idPrefix !== null && !contextId.startsWith(filter.idPrefix)) return false;
  return filter.scope === null || inScope(filter.scope, contextId);
}

/** Whether a change of a wanted context matches the rest of the filter. */
export function matchesChange(filter: ChangeFilter, change: ChangeEntry): boolean {
  if (filter.kinds && !filter.kinds.includes(change.kind)) return false;
  if (filter.actors && !filter.actors.includes(change.actor)) return false;
  if (filter.excludeActors?.includes(change.actor)) return false;
  if (filter.paths && PATH_FILTERED_KINDS.has(change.kind)) {
    return change.paths.some((changed) => filter.paths!.some((wanted) => pointersOverlap(changed, wanted)));
  }
  return true;
}
