import { mayAccess, type Principal, type Role } from "../src/security/auth.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { pointersOverlap } from "../src/json/pointer.js";
import { isJsonObject, type JsonValue } from "../src/json/types.js";
import { parseAllocationId } from "../src/model/allocation.js";
import type { RequestContext } from "./request-context.js";

type Args = Record<string, unknown>;

/** Who may call one root field, and on which contexts. */
export interface AccessRule {
  readonly roles: readonly Role[];
  /**
   * The contexts the call names, each checked against the caller's scope and, on a Redis
   * Cluster, for the state of its shard (StateGuard.whenIntact). Fields that name none either
   * touch no context (health), see only the caller's scope (contexts, contextChanges without
   * ids: the resolver and the feed filter by scope), or learn the id only as they run
   * (createContext without one: the store checks its shard).
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
/**
 * The settings that bound what agents get, which only admins may change: the budget and the
 * allocation caps. Agents may change the rest of the document, allocation profiles included
 * (every grant from a profile is still held to these caps).
 */
const ADMIN_SETTINGS = ["/resources/limits", "/policy/allocation/maxShare", "/policy/allocation/maxDepth", "/policy/allocation/defaultLeaseMs"];

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

/** A write that would change an admin setting: FORBIDDEN for agents. */
function adminSettingTouched(setting: string): AppError {
  return forbidden(`only admins may change ${setting}`);
}

/** Agents may patch a swarm's document, but no operation may write at or above an admin setting. */
function patchSparesAdminSettings(args: Args, principal: Principal): void {
  if (principal.role === "admin") return;
  const ops = args.patch as readonly { op: string; path: string; from?: string | null }[];
  const touched = ops.flatMap((op) => (op.op === "test" ? [] : op.op === "move" ? [op.path, op.from ?? ""] : [op.path]));
  const setting = ADMIN_SETTINGS.find((admin) => touched.some((path) => pointersOverlap(path, admin)));
  if (setting) throw adminSettingTouched(setting);
}

/**
 * Whether an RFC 7386 merge patch changes the value at `pointer` (unescaped segments): it names
 * the member, or replaces or deletes one of its ancestors (a merge value that is not an object
 * replaces the whole of what it lands on).
 */
function mergeReaches(merge: JsonValue, segments: readonly string[]): boolean {
  let at: JsonValue = merge;
  for (const segment of segments) {
    if (!isJsonObject(at)) return true;
    if (!Object.hasOwn(at, segment)) return false;
    at = at[segment]!;
  }
  return true;
}

function mergeSparesAdminSettings(args: Args, principal: Principal): void {
  if (principal.role === "admin") return;
  const setting = ADMIN_SETTINGS.find((admin) => mergeReaches(args.merge as JsonValue, admin.split("/").slice(1)));
  if (setting) throw adminSettingTouched(setting);
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
  "Query.me": { roles: ALL, contexts: none, whileUnavailable: true },
  // Deployment-wide, like /metrics (which counts the same subscriptions): not for scoped keys.
  "Query.serverInstances": { roles: ADMIN, contexts: none, whileUnavailable: true },
  "Mutation.createContext": { roles: ADMIN, contexts: none },
  "Mutation.deleteContext": { roles: ADMIN, contexts: field("id") },
  "Mutation.rollbackContext": { roles: ADMIN, contexts: field("id") },
  "Mutation.reinitialize": { roles: ADMIN, contexts: none, whileUnavailable: true },
  "Mutation.patchContext": { roles: WRITERS, contexts: field("id"), check: patchSparesAdminSettings },
  "Mutation.mergeContext": { roles: WRITERS, contexts: field("id"), check: mergeSparesAdminSettings },
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
  "Subscription.ledgerRefusals": { roles: ALL, contexts: field("contextId") },
};

/**
 * Throws unless `ctx.principal` may call root field `name` with `args`: FORBIDDEN for a role
 * without the right or a context outside the scope. Then, unless the field is served while
 * Redis's state is lost, returns StateGuard.whenIntact for the contexts it names: nothing when
 * their state is intact, or a promise that rejects with UNAVAILABLE if it is not. `name` must
 * have a rule (schema/index.ts makes sure).
 */
export function authorize(name: string, args: Args, ctx: RequestContext): Promise<void> | undefined {
  const rule = ACCESS[name]!;
  const { principal } = ctx;
  if (!rule.roles.includes(principal.role)) throw forbidden(`role ${principal.role} may not use ${name}`);
  const ids = rule.contexts(args);
  for (const id of ids) {
    if (!mayAccess(principal, id)) throw forbidden(`key ${principal.name} has no access to context ${JSON.stringify(id)}`);
  }
  rule.check?.(args, principal);
  return rule.whileUnavailable ? undefined : ctx.state.whenIntact(ids);
}
