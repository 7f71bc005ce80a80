import { existsSync, readFileSync } from "node:fs";
import type { IncomingMessage, Server } from "node:http";
import { createYoga, type YogaServerInstance } from "graphql-yoga";
import type { RequestContext } from "../../resolvers/request-context.js";
import { ResponseReads } from "../../resolvers/response-reads.js";
import { schema } from "../../schema/index.js";
import { OPEN_PRINCIPAL, type KeyRing, type Principal } from "../security/auth.js";
import type { Config } from "../config.js";
import { maskError } from "./error-masking.js";
import { faultReporter } from "../observability/faults.js";
import { FeedHub } from "../feed/feed-hub.js";
import { largestEntryBytes } from "../store/feed-reader.js";
import { Gate } from "../security/gate.js";
import { createLogger, type LogLevel, type Logger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { Observability } from "./observability-plugin.js";
import { connectRedis, type RedisTarget } from "../redis/clients.js";
import { CLUSTER_INDEX_SHARDS, Keys } from "../redis/keys.js";
import { foreignRequest, type OriginPolicy } from "../security/request-origin.js";
import { useSecurity } from "./security-plugin.js";
import { sharedSubscribe, useSubscribe } from "./shared-execution.js";
import { StateGuard } from "../redis/state-guard.js";
import { ContextStore } from "../store/contexts.js";
import { Heartbeat, readInstances } from "../store/instances.js";
import { PeriodicPass } from "../store/periodic-pass.js";
import { LedgerStore } from "../store/ledger.js";
import { CONSOLE_DIR, consoleFiles } from "./console-files.js";
import { GraphiQL } from "./graphiql.js";
import { listen } from "./listen.js";
import { routeRequests } from "./routes.js";
import { shutdown, withTimeout } from "./shutdown.js";
import { StaticFiles } from "./static-files.js";
import { attachGraphqlWs } from "./ws-transport.js";

/**
 * What createApp needs: the Config with the Redis to use resolved (URL or unix socket path, which
 * redisClusterNodes, when set, replaces) and the API keys read (null: open mode).
 */
export type AppConfig = Omit<Config, "redisUrl" | "dataDir" | "apiKeysFile" | "apiKeys"> & {
  readonly redisUrl: string;
  readonly keys: KeyRing | null;
};

export interface App {
  readonly yoga: YogaServerInstance<Record<string, unknown>, RequestContext>;
  readonly log: Logger;
  /** Listens on config.host:config.port; resolves to the GraphQL endpoint's URL. */
  start(): Promise<string>;
  /**
   * Shuts down: stops taking connections and requests (/ready answers 503), ends every feed
   * subscriber with UNAVAILABLE and the cursors to resume from, lets in-flight requests finish
   * (at most config.shutdownGraceMs), then closes Redis; returns as soon as all that is done,
   * and within the grace (plus at most a second for pending writes and one for closing the Redis
   * connections) even when Redis is down or stalled.
   */
  close(): Promise<void>;
}

/** The package's version, from the nearest package.json above this file (src/server or dist/src/server). */
function packageVersion(): string {
  for (const up of ["../../package.json", "../../../package.json"]) {
    const file = new URL(up, import.meta.url);
    if (existsSync(file)) return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
  }
  return "unknown";
}

/** The Redis Cluster of `config.redisClusterNodes` if it names one, else the Redis at `config.redisUrl`. */
export function redisTarget(config: AppConfig): RedisTarget {
  return config.redisClusterNodes === null ? { url: config.redisUrl } : { clusterNodes: config.redisClusterNodes.split(",") };
}

/** The deployment's key names: its indexes in CLUSTER_INDEX_SHARDS shards on a Redis Cluster, in one on one Redis. */
export function deploymentKeys(config: Pick<AppConfig, "keyPrefix" | "redisClusterNodes">): Keys {
  return new Keys(config.keyPrefix, config.redisClusterNodes === null ? 1 : CLUSTER_INDEX_SHARDS);
}

/** How long a health check waits for Redis's PONG, in ms. */
const PING_TIMEOUT_MS = 1_000;

/** Builds the server on a reachable Redis; does not listen until start(). Throws if Redis is unreachable. */
export async function createApp(config: AppConfig, log: Logger = createLogger(config.logLevel as LogLevel)): Promise<App> {
  const target = redisTarget(config);
  const redis = await connectRedis(target, "swarm-context", config.redisTimeoutMs, config.redisWaitReplicas);
  const keys = deploymentKeys(config);
  let feed: FeedHub | undefined;
  let state: StateGuard | undefined;
  const metrics = new Metrics(
    () => feed?.subscriberCount ?? 0,
    () => state?.current === "intact",
  );
  const fault = faultReporter(log, metrics);
  try {
    state = await StateGuard.open(redis, keys, config.stateCheckMs, {
      changed: (status, lostShards) =>
        status === "intact"
          ? log.info("redis state", { state: status })
          : log.error("redis state", { state: status, ...(status === "lost" ? { lostShards, fix: "docs/operations.md, Lost state" } : {}) }),
      roundTripMs: (ms) => metrics.redisRoundTripMs(ms),
    });
    const subscriberLimits = {
      changes: config.subscriberBuffer,
      bytes: config.subscriberBufferBytes,
      stallMs: config.subscriberStallMs,
      largestEntryBytes: largestEntryBytes(config),
    };
    feed = await FeedHub.open(target, redis, keys, subscriberLimits, (ms) => metrics.feedLagMs(ms), fault);
  } catch (err) {
    state?.close();
    redis.disconnect();
    throw err;
  }
  const contexts = new ContextStore(redis, keys, config, state);
  const migrated = await contexts.migrateLegacyDocuments();
  if (migrated > 0) log.info("contexts moved to the storage by member", { contexts: migrated });
  const ledger = new LedgerStore(redis, keys, config, state);
  // Beside the lease sweeper, the deletion sweeper: it finishes purges whose server stopped and
  // prunes deleted contexts' feeds and counters after their retention (store/deletions.ts).
  const sweepers =
    config.leaseSweepMs > 0
      ? [
          new PeriodicPass(() => ledger.sweep(), config.leaseSweepMs, (err) => fault("lease-sweeper", "lease sweep failed", err)),
          new PeriodicPass(() => contexts.deletions.sweep(), config.leaseSweepMs, (err) => fault("deletion-sweeper", "deletion sweep failed", err)),
        ]
      : [];
  const heartbeat = new Heartbeat(redis, keys, config, packageVersion(), () => feed!.subscriberCount, state, (err) => fault("heartbeat", "heartbeat failed", err));
  await heartbeat.start();
  // Answers at once while the connection is down, and within PING_TIMEOUT_MS otherwise: health
  // checks must not wait in the client's offline queue for its reconnect attempts.
  const pingRedis = async () => {
    if (redis.status !== "ready") throw new Error(`Redis connection is ${redis.status}`);
    const started = performance.now();
    await withTimeout(redis.ping(), PING_TIMEOUT_MS);
    return performance.now() - started;
  };
  const gate = new Gate(config.keys, redis, keys, { limit: config.rateLimit, windowMs: config.rateWindowMs, leasePercent: config.rateLeasePercent }, fault);
  const limits = {
    maxDepth: config.maxQueryDepth,
    maxAliases: config.maxAliases,
    maxTokens: config.maxTokens,
    maxCost: config.maxCost,
    maxFieldRepeats: config.maxFieldRepeats,
  };
  const security = useSecurity(gate, limits, config.introspection);
  const observability = new Observability(log, metrics, security.principalOf, config.introspection);
  // Each subscription event is a response of its own, with its own reads.
  const subscribe = sharedSubscribe(maskError, (context) => ({ ...(context as RequestContext), reads: new ResponseReads(config.maxResponseBytes) }));
  const guard = state;
  const hub = feed;
  const originPolicy: OriginPolicy = { allowedOrigins: new Set(config.allowedOrigins), loopbackHostsOnly: config.keys === null };
  // One function for every request's context (a subscription's lives as long as it does).
  const serverInstances = () => readInstances(redis, keys, config.heartbeatTtlMs);
  const yoga = createYoga<Record<string, unknown>, RequestContext>({
    schema,
    graphqlEndpoint: "/graphql",
    landingPage: false,
    // GraphiQL is ours (routes.ts, graphiql.ts): yoga's loads from a CDN.
    graphiql: false,
    // Pages of an allowed origin get CORS approval; the server's own need none, and any other is
    // refused in handle() before yoga. Keys go in the Authorization header, never in cookies, so
    // credentials are not allowed.
    cors: (request) => {
      const origin = request.headers.get("origin");
      return origin !== null && originPolicy.allowedOrigins.has(origin) ? { origin: [origin], credentials: false, exposedHeaders: ["x-request-id"] } : false;
    },
    logging: "warn",
    // routeRequests bounds every body before yoga sees it (a declared length, or a chunked body
    // read up to the bound): yoga's own bound would pipe each body through a stream again, a
    // twentieth of a small request's CPU.
    maxRequestBodySize: false,
    maskedErrors: { maskError },
    batching: config.maxBatch > 0 ? { limit: config.maxBatch } : false,
    plugins: [observability.plugin, security.plugin, useSubscribe(subscribe)],
    context: (initial): RequestContext => ({
      contexts,
      ledger,
      feed: hub,
      state: guard,
      pingRedis,
      serverInstances,
      reads: new ResponseReads(config.maxResponseBytes),
      // WebSocket operations bring their connection's principal; HTTP ones passed useSecurity.
      principal: (initial.principal as Principal | undefined) ?? security.principalOf(initial.request) ?? OPEN_PRINCIPAL,
    }),
  });

  let server: Server | undefined;
  let ws: { close(graceMs: number): Promise<void> } | undefined;
  let closing = false;
  const consoleEntries = consoleFiles();
  if (consoleEntries.size === 0) log.warn("the console's files are missing: /console/ answers 404", { expected: CONSOLE_DIR });
  const handle = routeRequests({ yoga, gate, metrics, state: guard, originPolicy, maxRequestBytes: config.maxRequestBytes, pingRedis, closing: () => closing, files: new StaticFiles(consoleEntries), graphiql: new GraphiQL({ endpoint: yoga.graphqlEndpoint, keyed: config.keys !== null }) });
  return {
    yoga,
    log,
    start: async () => {
      const foreign = (request: IncomingMessage) => foreignRequest(request.headers, originPolicy);
      const attach = (http: Server) => {
        ws = attachGraphqlWs(http, yoga, { ...config, subscribe, gate, observability, fault, foreign });
      };
      const listening = await listen(handle, attach, { host: config.host, port: config.port, maxRequestBytes: config.maxRequestBytes, keyed: config.keys !== null, log });
      server = listening.server;
      return listening.url;
    },
    close: async () => {
      // From now on every answer closes its connection (routeRequests) and /ready says 503.
      closing = true;
      await shutdown({ server, ws, feed: hub, sweepers, heartbeat, state: guard, contexts, redis, log }, config.shutdownGraceMs);
    },
  };
}
