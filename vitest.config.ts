import { createRequire } from "node:module";
import { configDefaults, defineConfig } from "vitest/config";

const require = createRequire(import.meta.url);

/**
 * Integration suites that run on a Redis Cluster as they are (the cluster project, below): the
 * ones that prove API.md's guarantees through the stores and scripts a cluster changes. Not
 * durability: its faults hit a redis-server of its own; test/cluster/ proves them on a cluster,
 * with the lists and sweepers over index shards. The others pass there too; they stay on one
 * Redis, to keep CI within its time.
 */
const CLUSTER_SUITES = ["contexts", "locks", "ledger", "ledger-race", "feed", "script-cache"];

export default defineConfig({
  // One copy of graphql-js: @pothos/core and yoga load its CommonJS build, so our code must too,
  // or graphql's instanceof checks see two realms.
  resolve: { alias: { graphql: require.resolve("graphql") } },
  test: {
    // Test files share one worker's modules instead of loading graphql, yoga and the schema again
    // for each (55 s of a 290 s run on this 2-core machine). Every file starts its own servers.
    isolate: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      // No Redis: `npm run test:unit` runs these alone, without starting a redis-server.
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, "test/unit/**", "test/soak/**", "test/cluster/**"],
          globalSetup: ["test/global-setup.ts"],
        },
      },
      // The guarantees again on a Redis Cluster of three masters (test/global-setup.ts), not part of
      // `npm test`: `npm run test:cluster` (CLUSTER=1) runs them.
      ...(process.env.CLUSTER === "1"
        ? [
            {
              extends: true as const,
              test: {
                name: "cluster",
                include: ["test/cluster/**/*.test.ts", ...CLUSTER_SUITES.map((name) => `test/integration/${name}.test.ts`)],
                globalSetup: ["test/global-setup.ts"],
              },
            },
          ]
        : []),
      // Long runs, not part of `npm test`: `npm run test:soak` (SOAK=1) runs them alone, each on a redis-server of its own.
      ...(process.env.SOAK === "1"
        ? [{ extends: true as const, test: { name: "soak", include: ["test/soak/**/*.test.ts"], testTimeout: 300_000 } }]
        : []),
    ],
  },
});
