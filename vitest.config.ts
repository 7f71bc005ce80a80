import { createRequire } from "node:module";
import { defineConfig } from "vitest/config";

const require = createRequire(import.meta.url);

export default defineConfig({
  // One copy of graphql-js: @pothos/core and yoga load its CommonJS build, so our code must too,
  // or graphql's instanceof checks see two realms.
  resolve: { alias: { graphql: require.resolve("graphql") } },
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // Test files share one worker's modules instead of loading graphql, yoga and the schema again
    // for each (55 s of a 290 s run on this 2-core machine). Every file starts its own servers.
    isolate: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
