// A server under benchmark in its own process: `ceiling` (plain yoga, no Redis; `ceiling unbounded`: without its request body bound) or `app` (swarm-context on BENCH_REDIS_URL, or on the Redis Cluster of BENCH_REDIS_CLUSTER_NODES); prints its URL on stdout (a line of its own among the server's JSON log lines).
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createSchema, createYoga } from "graphql-yoga";
import { createApp } from "../src/server/app.js";
import { loadConfig } from "../src/config.js";

const mode = process.argv[2];
if (mode === "ceiling") {
  // `ceiling unbounded`: without yoga's request body bound, which swarm-context replaces by its own.
  const yoga = createYoga({
    logging: false,
    ...(process.argv[3] === "unbounded" ? { maxRequestBodySize: false as const } : {}),
    schema: createSchema({
      typeDefs: "type Query { hello: String! } type Mutation { echo(text: String!): String! }",
      resolvers: { Query: { hello: () => "world" }, Mutation: { echo: (_root: unknown, args: { text: string }) => args.text } },
    }),
  });
  const server = createServer(yoga);
  server.listen(0, "127.0.0.1", () => {
    console.log(`http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`);
  });
} else if (mode === "app") {
  // The defaults, as `npm start` has them, on the bench's Redis; BENCH_* env adjusts (run.ts).
  // The rate limit counts every request (its cost is measured) but is set out of the bench's reach.
  const env = { SWARM_RATE_LIMIT: "1000000000", ...process.env };
  const { redisUrl: _url, dataDir: _dir, apiKeysFile: _file, apiKeys: _keys, ...defaults } = loadConfig([], env);
  const app = await createApp({
    ...defaults,
    port: 0,
    redisUrl: process.env.BENCH_REDIS_URL ?? "",
    redisClusterNodes: process.env.BENCH_REDIS_CLUSTER_NODES ?? null,
    keyPrefix: process.env.BENCH_KEY_PREFIX ?? "bench",
    keys: null,
  });
  console.log(await app.start());
} else {
  console.error("usage: serve.ts ceiling|app");
  process.exit(2);
}
