import { GraphQLError } from "graphql";
import { AppError, ErrorCode } from "../errors.js";
import { isConnectionFailure } from "../redis/clients.js";

/**
 * Lets through refusals (an AppError carries its `extensions.code` into the GraphQL error) and
 * errors about the request itself (syntax, validation, coercion). A command the Redis client gave
 * up on because its connection went away, that Redis did not answer within
 * SWARM_REDIS_TIMEOUT_MS, or that a failing-over Redis Cluster sent elsewhere, becomes UNAVAILABLE (the store was unreachable or stalled; the
 * operation may or may not have applied). Anything else becomes
 * INTERNAL_SERVER_ERROR without its message or stack, keeping the cause as `originalError` (never
 * sent; observability-plugin.ts logs it). Used for HTTP and SSE (through yoga) and for
 * subscriptions over WebSocket (shared-execution.ts).
 */
export function maskError(error: unknown, message: string): Error {
  if (error instanceof GraphQLError) {
    const original = error.originalError;
    if (!original || original instanceof AppError || original instanceof GraphQLError) return error;
  }
  const located = error instanceof GraphQLError ? error : undefined;
  const cause = located ? located.originalError : error;
  if (isConnectionFailure(cause)) {
    return new GraphQLError(
      "Redis became unreachable, did not answer in time or was failing over during this operation, so whether it applied is unknown: retry it (a write with the same opId applies at most once)",
      { nodes: located?.nodes, path: located?.path, extensions: { code: ErrorCode.UNAVAILABLE } },
    );
  }
  return new GraphQLError(message, {
    nodes: located?.nodes,
    path: located?.path,
    originalError: cause instanceof Error ? cause : undefined,
    extensions: { code: "INTERNAL_SERVER_ERROR" },
  });
}
