// A server under benchmark in its own process: `ceiling` (plain yoga, no Redis) or `app` (swarm-context on BENCH_REDIS_URL); prints its URL on stdout.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createSchema, createYoga } from "graphql-yoga";
import { createApp } from "../src/app.js";

const mode = process.argv[2];
if (mode === "ceiling") {
  const yoga = createYoga({
    logging: false,
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
  const app = await createApp({
    host: "127.0.0.1",
    port: 0,
    redisUrl: process.env.BENCH_REDIS_URL!,
    keyPrefix: "bench",
    historyLimit: 100,
    feedRetention: 10_000,
    maxDocumentBytes: 1_048_576,
    maxDocumentDepth: 32,
    opIdTtlSeconds: 86_400,
    resendTtlSeconds: 300,
    leaseSweepMs: 500,
    subscriberBuffer: 10_000,
    subscriberStallMs: 10_000,
    maxSubscriptionsPerConnection: 100,
    keepAliveMs: 12_000,
  });
  console.log(await app.start());
} else {
  console.error("usage: serve.ts ceiling|app");
  process.exit(2);
}
