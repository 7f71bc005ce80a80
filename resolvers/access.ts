import { mayAccess, type Principal, type Role } from "../src/auth.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { pathsOverlap } from "../src/feed/change-filter.js";
import { isJsonObject, type JsonValue } from "../src/json/types.js";
import { parseAllocationId } from "../src/store/ledger.js";
import type { RequestContext } from "./request-context.js";

type Args = Record<string, unknown>;

/** Who may call one root field, and on which contexts. */
export interface AccessRule {
  readonly roles: readonly Role[];
  /**
   * The contexts the call names, each checked against the caller's scope. Fields that name none
   * either touch no context (health) or see only the caller's scope (contexts, contextChanges
   * without ids: the resolver and the feed filter by scope).
   */
  readonly contexts: (args: Args) => readonly string[];
  /** Served while Redis's state is lost or unverified: the fields that report or repair it. */
  readonly whileUnavailable?: true;
  /** A further check, for what a role may not do even inside its scope. */
  readonly check?: (args: Args, principal: Principal) => void;
}

const ALL: readonly Role[] = ["admin", "agent", "viewer"];
const WRITERS: readonly Role[] = ["admin", "agent"];
const ADMIN: readonly Role[] = ["admin"];
const LIMITS = "/resources/limits";

const none = (): readonly string[] => [];
const field = (name: string) => (args: Args) => [args[name] as string];
function allocationContext(args: Args): readonly string[] {
  try {
    return [parseAllocationId(args.allocationId as string).contextId];
  } catch {
    return []; // not an allocation id: the resolver answers NOT_FOUND, touching nothing
  }
}

function forbidden(message: string): AppError {
  return new AppError(ErrorCode.FORBIDDEN, message, {});
}

/** Agents may change a swarm's document, but not its budget. */
function patchSparesLimits(args: Args, principal: Principal): void {
  if (principal.role === "admin") return;
  const ops = args.patch as readonly { op: string; path: string; from?: string | null }[];
  const touched = ops.flatMap((op) => (op.op === "test" ? [] : op.op === "move" ? [op.path, op.from ?? ""] : [op.path]));
  if (touched.some((path) => pathsOverlap(path, LIMITS))) throw forbidden(`only admins may change ${LIMITS}`);
}

function mergeSparesLimits(args: Args, principal: Principal): void {
  if (principal.role === "admin") return;
  const merge = args.merge as JsonValue;
  const resources = isJsonObject(merge) ? merge.resources : undefined;
  if (!isJsonObject(merge) || (resources !== undefined && (!isJsonObject(resources) || Object.hasOwn(resources, "limits")))) {
    throw forbidden(`only admins may change ${LIMITS}`);
  }
}

/**
 * The rule of every root field, by "Type.field". The schema refuses to build when a root field
 * has none (schema/index.ts), and test/integration/authorization.test.ts checks each one.
 */
export const ACCESS: Readonly<Record<string, AccessRule>> = {
  "Query.context": { roles: ALL, contexts: field("id") },
  "Query.contexts": { roles: ALL, contexts: none },
  "Query.allocation": { roles: ALL, contexts: (args) => allocationContext({ allocationId: args.id }) },
  "Query.health": { roles: ALL, contexts: none, whileUnavailable: true },
  "Mutation.createContext": { roles: ADMIN, contexts: none },
  "Mutation.deleteContext": { roles: ADMIN, contexts: none },
  "Mutation.rollbackContext": { roles: ADMIN, contexts: none },
  "Mutation.reinitialize": { roles: ADMIN, contexts: none, whileUnavailable: true },
  "Mutation.patchContext": { roles: WRITERS, contexts: field("id"), check: patchSparesLimits },
  "Mutation.mergeContext": { roles: WRITERS, contexts: field("id"), check: mergeSparesLimits },
  "Mutation.allocate": { roles: WRITERS, contexts: field("contextId") },
  "Mutation.reportUsage": { roles: WRITERS, contexts: allocationContext },
  "Mutation.release": { roles: WRITERS, contexts: allocationContext },
  "Mutation.renewAllocation": { roles: WRITERS, contexts: allocationContext },
  "Mutation.acquireLock": { roles: WRITERS, contexts: field("contextId") },
  "Mutation.renewLock": { roles: WRITERS, contexts: field("contextId") },
  "Mutation.releaseLock": { roles: WRITERS, contexts: field("contextId") },
  "Subscription.contextChanges": {
    roles: ALL,
    contexts: (args) => [
      ...((args.contextIds as string[] | null) ?? []),
      ...((args.after as { contextId: string }[] | null) ?? []).map((c) => c.contextId),
    ],
  },
  "Subscription.watchSlice": { roles: ALL, contexts: field("id") },
};

/**
 * Throws unless `ctx.principal` may call root field `name` with `args`: FORBIDDEN for a role
 * without the right or a context outside the scope. Then, unless the field is served while
 * Redis's state is lost, returns StateGuard.whenIntact: nothing when the state is intact, or a
 * promise that rejects with UNAVAILABLE if it is not. `name` must have a rule (schema/index.ts
 * makes sure).
 */
export function authorize(name: string, args: Args, ctx: RequestContext): Promise<void> | undefined {
  const rule = ACCESS[name]!;
  const { principal } = ctx;
  if (!rule.roles.includes(principal.role)) throw forbidden(`role ${principal.role} may not use ${name}`);
  for (const id of rule.contexts(args)) {
    if (!mayAccess(principal, id)) throw forbidden(`key ${principal.name} has no access to context ${JSON.stringify(id)}`);
  }
  rule.check?.(args, principal);
  return rule.whileUnavailable ? undefined : ctx.state.whenIntact();
}
