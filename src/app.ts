import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createYoga, type YogaServerInstance } from "graphql-yoga";
import type { RequestContext } from "../resolvers/request-context.js";
import { schema } from "../schema/index.js";
import type { Config } from "./config.js";
import { maskError } from "./error-masking.js";
import { connectRedis } from "./redis/clients.js";
import { Keys } from "./redis/keys.js";
import { FeedHub } from "./feed/feed-hub.js";
import { sharedSubscribe, useSubscribe } from "./shared-execution.js";
import { ContextStore } from "./store/contexts.js";
import { LedgerStore } from "./store/ledger.js";
import { attachGraphqlWs } from "./ws-transport.js";

/** What createApp needs: the Config with the Redis to use resolved (URL or unix socket path). */
export type AppConfig = Omit<Config, "redisUrl" | "dataDir"> & { readonly redisUrl: string };

export interface App {
  readonly yoga: YogaServerInstance<Record<string, unknown>, RequestContext>;
  /** Listens on config.host:config.port; resolves to the GraphQL endpoint's URL. */
  start(): Promise<string>;
  /**
   * Shuts down: stops taking connections, ends every feed subscriber with UNAVAILABLE and the
   * cursors to resume from, lets in-flight requests finish (at most 5 s), then closes Redis.
   */
  close(): Promise<void>;
}

/** How long close() lets in-flight requests finish before cutting their connections. */
const CLOSE_GRACE_MS = 5_000;

/** Builds the server on a reachable Redis; does not listen until start(). Throws if Redis is unreachable. */
export async function createApp(config: AppConfig): Promise<App> {
  const redis = await connectRedis(config.redisUrl, "swarm-context");
  const keys = new Keys(config.keyPrefix);
  const contexts = new ContextStore(redis, keys, config);
  const ledger = new LedgerStore(redis, keys, config);
  let feed: FeedHub;
  try {
    feed = await FeedHub.open(config.redisUrl, redis, keys, config.subscriberBuffer, config.subscriberStallMs);
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  const sweeper =
    config.leaseSweepMs > 0
      ? setInterval(() => {
          ledger.sweep().catch(() => {
            // Redis unreachable: the next tick tries again, and ledger operations expire on their own.
          });
        }, config.leaseSweepMs)
      : undefined;
  const pingRedis = async () => {
    const started = performance.now();
    await redis.ping();
    return performance.now() - started;
  };
  const subscribe = sharedSubscribe(maskError);
  const yoga = createYoga<Record<string, unknown>, RequestContext>({
    schema,
    graphqlEndpoint: "/graphql",
    landingPage: false,
    logging: "warn",
    maskedErrors: { maskError },
    plugins: [useSubscribe(subscribe)],
    context: (): RequestContext => ({ contexts, ledger, feed, actor: "anonymous", pingRedis }),
  });
  let server: Server | undefined;
  let ws: { close(graceMs: number): Promise<void> } | undefined;
  return {
    yoga,
    start: () =>
      new Promise((resolve, reject) => {
        server = createServer(yoga);
        ws = attachGraphqlWs(server, yoga, { ...config, subscribe });
        server.once("error", reject);
        server.listen(config.port, config.host, () => {
          const { port } = server!.address() as AddressInfo;
          const host = config.host.includes(":") ? `[${config.host}]` : config.host;
          resolve(`http://${host}:${port}/graphql`);
        });
      }),
    close: async () => {
      // Stop taking connections; end every feed subscriber with the cursors to resume from,
      // and let those last messages and every in-flight request finish, within the grace.
      const closed = server ? new Promise<void>((resolve) => server!.close(() => resolve())) : undefined;
      server?.closeIdleConnections();
      feed.endSubscribers();
      await ws?.close(CLOSE_GRACE_MS);
      if (closed) {
        const timer = setTimeout(() => server!.closeAllConnections(), CLOSE_GRACE_MS);
        await closed;
        clearTimeout(timer);
      }
      clearInterval(sweeper);
      await contexts.drain();
      await feed.close();
      await redis.quit();
    },
  };
}
