// The fan-out baseline: a change feed as a user would assemble it from the READMEs of graphql-yoga, graphql-ws, graphql-redis-subscriptions and graphql-subscriptions, on BENCH_REDIS_URL; prints its URL on stdout.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { GraphQLScalarType, valueFromASTUntyped } from "graphql";
import { RedisPubSub } from "graphql-redis-subscriptions";
import { withFilter } from "graphql-subscriptions";
import { useServer } from "graphql-ws/use/ws";
import { createSchema, createYoga } from "graphql-yoga";
import { Redis } from "ioredis";
import { WebSocketServer } from "ws";

/** What the feed publishes; the same fields as swarm-context's ContextChange asked for by the bench. */
interface Change {
  contextId: string;
  seq: number;
  version: number;
  kind: string;
  paths: string[];
  at: string;
}

/** The stored form of a context: the document with its version counter beside it. */
interface Stored {
  version: number;
  document: unknown;
}

interface PatchOperation {
  op: string;
  path: string;
  value?: unknown;
}

const redisUrl = process.env.BENCH_REDIS_URL;
if (!redisUrl) {
  console.error("naive-feed-server.ts needs BENCH_REDIS_URL");
  process.exit(2);
}
const store = new Redis(redisUrl);
// RedisPubSub wants its own two connections: a connection in subscriber mode cannot run commands.
const pubsub = new RedisPubSub({ publisher: new Redis(redisUrl), subscriber: new Redis(redisUrl) });
const CHANGES = "CHANGES";

// graphql-yoga has no JSON scalar of its own; this is the usual few lines instead of graphql-scalars.
const JSONScalar = new GraphQLScalarType({
  name: "JSON",
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (ast, variables) => valueFromASTUntyped(ast, variables),
});

/** Applies add/replace/remove of RFC 6902 in place, without the checks a real implementation makes. */
function applyPatch(document: unknown, operations: PatchOperation[]): unknown {
  for (const { op, path, value } of operations) {
    if (path === "") {
      document = value;
      continue;
    }
    const tokens = path.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
    const last = tokens.pop()!;
    let parent = document as Record<string, unknown>;
    for (const token of tokens) parent = parent[token] as Record<string, unknown>;
    if (op === "remove") delete parent[last];
    else parent[last] = value;
  }
  return document;
}

async function write(contextId: string, kind: string, paths: string[], next: (stored: Stored | null) => Stored): Promise<Stored> {
  // Read-modify-write without WATCH or a script: concurrent writers can lose updates, which the
  // bench never provokes since it writes one update at a time.
  const raw = await store.get(`naive:${contextId}`);
  const stored = next(raw === null ? null : (JSON.parse(raw) as Stored));
  await store.set(`naive:${contextId}`, JSON.stringify(stored));
  const change: Change = { contextId, seq: stored.version, version: stored.version, kind, paths, at: new Date().toISOString() };
  await pubsub.publish(CHANGES, change);
  return stored;
}

const yoga = createYoga({
  logging: false,
  schema: createSchema({
    typeDefs: /* GraphQL */ `
      scalar JSON
      type Ctx { id: ID! version: Int! document: JSON! }
      type ContextChange { contextId: ID! seq: Int! version: Int! kind: String! paths: [String!]! at: String! }
      type ChangeBatch { changes: [ContextChange!]! }
      type Query { context(id: ID!): Ctx }
      type Mutation {
        createContext(id: ID!, document: JSON!): Ctx
        patchContext(id: ID!, patch: JSON!): Ctx
      }
      type Subscription { contextChanges(contextIds: [ID!]): ChangeBatch }
    `,
    resolvers: {
      JSON: JSONScalar,
      Query: {
        context: async (_root: unknown, args: { id: string }) => {
          const raw = await store.get(`naive:${args.id}`);
          return raw === null ? null : { id: args.id, ...(JSON.parse(raw) as Stored) };
        },
      },
      Mutation: {
        createContext: async (_root: unknown, args: { id: string; document: unknown }) => {
          const stored = await write(args.id, "CREATED", [""], (current) => {
            if (current) throw new Error(`context ${args.id} exists already`);
            return { version: 1, document: args.document };
          });
          return { id: args.id, ...stored };
        },
        patchContext: async (_root: unknown, args: { id: string; patch: PatchOperation[] }) => {
          const paths = args.patch.map((op) => op.path);
          const stored = await write(args.id, "UPDATED", paths, (current) => {
            if (!current) throw new Error(`no context ${args.id}`);
            return { version: current.version + 1, document: applyPatch(current.document, args.patch) };
          });
          return { id: args.id, ...stored };
        },
      },
      Subscription: {
        contextChanges: {
          subscribe: withFilter(
            () => pubsub.asyncIterator<Change>(CHANGES),
            (payload: Change | undefined, args: { contextIds?: string[] | null } | undefined) =>
              payload !== undefined && (args?.contextIds ?? []).includes(payload.contextId),
          ),
          // One change per message, in the same envelope as swarm-context's batches.
          resolve: (payload: Change) => ({ changes: [payload] }),
        },
      },
    },
  }),
});

const server = createServer(yoga);
const wsServer = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
// The wiring of graphql-ws to yoga as yoga's documentation gives it.
useServer(
  {
    execute: (args: any) => args.rootValue.execute(args),
    subscribe: (args: any) => args.rootValue.subscribe(args),
    onSubscribe: async (ctx, _id, params) => {
      const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
        ...ctx,
        req: ctx.extra.request,
        socket: ctx.extra.socket,
        params,
      });
      const args = {
        schema,
        operationName: params.operationName,
        document: parse(params.query),
        variableValues: params.variables,
        contextValue: await contextFactory(),
        rootValue: { execute, subscribe },
      };
      const errors = validate(args.schema, args.document);
      if (errors.length) return errors;
      return args;
    },
  },
  wsServer,
);
server.listen(0, "127.0.0.1", () => {
  console.log(`http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`);
});
