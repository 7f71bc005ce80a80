import { defaultFieldResolver, lexicographicSortSchema, type GraphQLFieldResolver, type GraphQLSchema } from "graphql";
import { ACCESS, authorize } from "../resolvers/access.js";
import type { RequestContext } from "../resolvers/request-context.js";
import { builder } from "./builder.js";
import "./scalars.js";
import "./errors.js";
import "./change.js";
import "./health.js";
import "./caller.js";
import "./swarm-context.js";
import "./history.js";
import "./ledger.js";
import "./feed.js";
import "./refusals.js";

builder.queryType({ description: "Reads." });
builder.mutationType({ description: "Writes. Every mutation accepts `opId` for idempotent retries." });

type Resolver = GraphQLFieldResolver<unknown, RequestContext>;

/**
 * Makes every root field check its access rule (resolvers/access.ts) before it runs: for a
 * subscription, when it subscribes (what it then delivers is filtered by scope in the feed).
 * Nested fields need no rule: they belong to a context the root field was allowed to reach.
 * Throws, so the server does not start, when a root field has no rule.
 */
function guardRootFields(schema: GraphQLSchema): GraphQLSchema {
  for (const type of [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]) {
    for (const field of Object.values(type?.getFields() ?? {})) {
      const name = `${type!.name}.${field.name}`;
      if (!ACCESS[name]) throw new Error(`root field ${name} has no access rule in resolvers/access.ts`);
      const mutation = type === schema.getMutationType();
      const guard = (inner: Resolver): Resolver => (source, args, ctx, info) => {
        // Mutations run one after another: what the response read before one may change.
        if (mutation) ctx.reads.forgetAllocations();
        const waiting = authorize(name, args, ctx);
        return waiting ? waiting.then(() => inner(source, args, ctx, info)) : inner(source, args, ctx, info);
      };
      if (type === schema.getSubscriptionType()) field.subscribe = guard(field.subscribe ?? defaultFieldResolver);
      else field.resolve = guard(field.resolve ?? defaultFieldResolver);
    }
  }
  return schema;
}

/** The whole API, types sorted by name, every root field guarded. */
export const schema = guardRootFields(lexicographicSortSchema(builder.toSchema()));
