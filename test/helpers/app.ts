import { randomUUID } from "node:crypto";
import { print } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { inject } from "vitest";
import { createApp, type App, type AppConfig } from "../../src/server/app.js";
import { loadConfig } from "../../src/config.js";
import type { Logger } from "../../src/observability/logger.js";

export interface GraphQLResponse<T> {
  readonly data?: T | null;
  readonly errors?: readonly { message: string; extensions?: Record<string, unknown> }[];
}

export interface TestServer {
  readonly app: App;
  readonly url: string;
  readonly config: AppConfig;
  /** POSTs a typed operation over real HTTP and returns the parsed response. */
  request<T, V>(document: TypedDocumentNode<T, V>, variables?: V): Promise<GraphQLResponse<T>>;
  /** Like request, but throws unless the response has data and no errors. */
  data<T, V>(document: TypedDocumentNode<T, V>, variables?: V): Promise<T>;
  close(): Promise<void>;
}

/** Config for a test server on the shared test Redis with a fresh key prefix of its own: the defaults, open mode. */
export function testConfig(overrides: Partial<AppConfig> = {}): AppConfig {
  const { redisUrl: _url, dataDir: _dir, apiKeysFile: _file, apiKeys: _keys, ...defaults } = loadConfig([], {});
  return {
    ...defaults,
    port: 0,
    redisUrl: inject("redisUrl"),
    keyPrefix: `t-${randomUUID()}`,
    keys: null,
    // Tests race many requests through one key; the rate limit has tests of its own.
    rateLimit: 0,
    logLevel: "error",
    ...overrides,
  };
}

/** Starts the real server (HTTP on a free port) for a test file; `log` receives its log lines (default: the config's level, to stdout). */
export async function startTestServer(overrides: Partial<AppConfig> = {}, log?: Logger): Promise<TestServer> {
  const config = testConfig(overrides);
  const app = await createApp(config, log);
  const url = await app.start();
  const request = async <T, V>(document: TypedDocumentNode<T, V>, variables?: V) => {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: print(document), variables }),
    });
    return (await res.json()) as GraphQLResponse<T>;
  };
  return {
    app,
    url,
    config,
    request,
    data: async (document, variables) => {
      const res = await request(document, variables);
      if (res.errors?.length || !res.data) throw new Error(`GraphQL errors: ${JSON.stringify(res.errors)}`);
      return res.data;
    },
    close: () => app.close(),
  };
}

/** The `extensions.code` of the first error, to assert refusals by code. */
export function errorCode(res: GraphQLResponse<unknown>): unknown {
  return res.errors?.[0]?.extensions?.code;
}
