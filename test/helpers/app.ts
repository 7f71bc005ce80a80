import { randomUUID } from "node:crypto";
import { print } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, expect, inject } from "vitest";
import { createApp, type App, type AppConfig } from "../../src/server/app.js";
import { loadConfig } from "../../src/config.js";
import type { Logger } from "../../src/observability/logger.js";
import { startRedisServer, type RedisServer } from "../../support/redis-server.js";
import { redisState } from "./redis-state.js";

export interface GraphQLResponse<T> {
  readonly data?: T | null;
  readonly errors?: readonly { message: string; extensions?: Record<string, unknown> }[];
}

/** A running test server: its app, address and settings, and requests over real HTTP. */
export interface ServerHandle {
  readonly app: App;
  readonly url: string;
  readonly config: AppConfig;
  /** POSTs a typed operation over real HTTP and returns the parsed response. */
  request<T, V>(document: TypedDocumentNode<T, V>, variables?: V): Promise<GraphQLResponse<T>>;
  /** Like request, but throws unless the response has data and no errors. */
  data<T, V>(document: TypedDocumentNode<T, V>, variables?: V): Promise<T>;
}

/** A server a test started itself (startTestServer), to close when done. */
export interface TestServer extends ServerHandle {
  close(): Promise<void>;
}

/** Config for a test server on the shared test Redis with a fresh key prefix of its own: the defaults, open mode. */
export function testConfig(overrides: Partial<AppConfig> = {}): AppConfig {
  const { redisUrl: _url, dataDir: _dir, apiKeysFile: _file, apiKeys: _keys, ...defaults } = loadConfig([], {});
  return {
    ...defaults,
    port: 0,
    redisUrl: inject("redisUrl"),
    // The cluster project (vitest.config.ts) runs the same tests on a Redis Cluster, unless a
    // test names a Redis of its own.
    redisClusterNodes: overrides.redisUrl === undefined ? (inject("redisClusterNodes") ?? null) : null,
    keyPrefix: `t-${randomUUID()}`,
    keys: null,
    // Tests race many requests through one key; the rate limit has tests of its own.
    rateLimit: 0,
    logLevel: "error",
    ...overrides,
  };
}

/**
 * The environment that points a server process (helpers/server-process.ts spawnServer) at the
 * test run's Redis, or at its Redis Cluster in the cluster project.
 */
export function testRedisEnv(): Record<string, string> {
  const nodes = inject("redisClusterNodes");
  return nodes ? { REDIS_CLUSTER_NODES: nodes } : { REDIS_URL: inject("redisUrl") };
}

/** A client on the test run's Redis, or on its Redis Cluster in the cluster project (typed as one Redis, as ServerFixture.redis). */
export function testRedisClient(): Redis {
  const nodes = inject("redisClusterNodes");
  return nodes ? (new Cluster(nodes.split(",")) as unknown as Redis) : new Redis(inject("redisUrl"));
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

/** A test file's server (see useTestServer), which the fixture closes: a client on its Redis besides, and refused(). */
export interface ServerFixture extends ServerHandle {
  /** A plain client on the server's Redis (or Redis Cluster), connected on first use, to read or seed state under the server. */
  readonly redis: Redis;
  /**
   * Runs a request that must be refused with `code`: exactly one error, with that code, and no
   * data; and `state` (default: every key under the server's key prefix, see redisState) is the
   * same after it as before ("a refused operation changes nothing"). Returns the refusal's error.
   */
  refused(code: string, run: () => Promise<GraphQLResponse<unknown>>, state?: () => Promise<unknown>): Promise<ResponseError>;
}

type ResponseError = NonNullable<GraphQLResponse<unknown>["errors"]>[number];

/**
 * A redis-server of the calling file's own (so that what it sees, MONITOR say, is that file's
 * alone), started in beforeAll and stopped in afterAll: call it before the useTestServer calls
 * that use it, so that their servers close first. The function gives the server once started.
 */
export function useRedisServer(): () => RedisServer {
  let server: RedisServer | undefined;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  return () => {
    if (!server) throw new Error("useRedisServer: the redis-server starts in beforeAll; use it from a test or a later hook");
    return server;
  };
}

/**
 * Starts a server before the tests of the enclosing file or describe block (beforeAll) and closes
 * it, and the fixture's Redis client, after them (afterAll). Call it at the top level of a file or
 * a describe block; its members throw until the server has started. `overrides` go to
 * startTestServer: an object, or a function called when the server starts, for values known only
 * then (another fixture's key prefix, a proxy's address). `log` as for startTestServer.
 */
export function useTestServer(overrides: Partial<AppConfig> | (() => Partial<AppConfig>) = {}, log?: Logger): ServerFixture {
  let server: TestServer | undefined;
  let redis: Redis | undefined;
  beforeAll(async () => {
    server = await startTestServer(typeof overrides === "function" ? overrides() : overrides, log);
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.close();
  });
  const started = (): TestServer => {
    if (!server) throw new Error("useTestServer: the server starts in beforeAll; use it from a test or a later hook");
    return server;
  };
  const fixture: ServerFixture = {
    get app() {
      return started().app;
    },
    get url() {
      return started().url;
    },
    get config() {
      return started().config;
    },
    get redis() {
      const { redisUrl, redisClusterNodes } = started().config;
      // Typed as one Redis: the commands tests send on a cluster are the single-slot ones both have.
      redis ??= redisClusterNodes === null ? new Redis(redisUrl) : (new Cluster(redisClusterNodes.split(",")) as unknown as Redis);
      return redis;
    },
    request: (document, variables) => started().request(document, variables),
    data: (document, variables) => started().data(document, variables),
    async refused(code, run, state = () => redisState(fixture.redis, fixture.config.keyPrefix)) {
      const before = await state();
      const res = await run();
      expect(
        { codes: res.errors?.map((e) => e.extensions?.code), data: Object.values(res.data ?? {}).filter((value) => value !== null) },
        JSON.stringify(res),
      ).toEqual({ codes: [code], data: [] });
      expect(await state(), "a refused operation changed nothing").toEqual(before);
      return res.errors![0]!;
    },
  };
  return fixture;
}

/** The `extensions.code` of the first error, to assert refusals by code. */
export function errorCode(res: GraphQLResponse<unknown>): unknown {
  return res.errors?.[0]?.extensions?.code;
}
