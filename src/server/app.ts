import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { finished, type Duplex } from "node:stream";
import { createYoga, type YogaServerInstance } from "graphql-yoga";
import type { RequestContext } from "../../resolvers/request-context.js";
import { ResponseReads } from "../../resolvers/response-reads.js";
import { schema } from "../../schema/index.js";
import { OPEN_PRINCIPAL, type KeyRing, type Principal } from "../security/auth.js";
import type { Config } from "../config.js";
import { maskError } from "./error-masking.js";
import { AppError, refusalBody } from "../errors.js";
import { faultReporter } from "../observability/faults.js";
import { FeedHub } from "../feed/feed-hub.js";
import { largestEntryBytes } from "../store/feed-reader.js";
import { Gate } from "../security/gate.js";
import { createLogger, type LogLevel, type Logger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { Observability } from "./observability-plugin.js";
import { closeRedis, connectRedis } from "../redis/clients.js";
import { Keys } from "../redis/keys.js";
import { foreignRequest, isLoopback, type OriginPolicy } from "../security/request-origin.js";
import { useSecurity } from "./security-plugin.js";
import { sharedSubscribe, useSubscribe } from "./shared-execution.js";
import { StateGuard } from "../redis/state-guard.js";
import { ContextStore } from "../store/contexts.js";
import { LeaseSweeper } from "../store/lease-sweeper.js";
import { LedgerStore } from "../store/ledger.js";
import { attachGraphqlWs } from "./ws-transport.js";

/**
 * What createApp needs: the Config with the Redis to use resolved (URL or unix socket path) and
 * the API keys read (null: open mode).
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

/** How long a health check waits for Redis's PONG, in ms. */
const PING_TIMEOUT_MS = 1_000;

/** `work`, or a rejection once `ms` have passed. */
function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify(body));
}

/** A refusal answered outside GraphQL (refusalBody). */
function jsonError(res: ServerResponse, status: number, message: string, extensions: Record<string, unknown>): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" }).end(refusalBody(message, extensions));
}

/**
 * How much of a refused request's unread body the server reads and discards after answering, in
 * bytes, and for how long at most, in ms, before it closes the connection. Closing while the client
 * still sends resets the connection, and the client then often fails (EPIPE) before it reads the
 * answer; reading on lets it finish sending and read it, as nginx's lingering close does. A body
 * past either bound has the connection cut: reading it all would let a client keep the server busy.
 */
export const REFUSED_BODY_DRAIN_BYTES = 16 * 1024 * 1024;
export const REFUSED_BODY_DRAIN_MS = 5_000;

/**
 * Answers a request with a refusal before its body is read, then reads and discards the body
 * (within REFUSED_BODY_DRAIN_BYTES and REFUSED_BODY_DRAIN_MS) and closes the connection.
 */
function refuseUnread(req: IncomingMessage, res: ServerResponse, status: number, message: string, extensions: Record<string, unknown>): void {
  const body = refusalBody(message, extensions);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body), connection: "close" });
  // The answer is whole (content-length) but not ended: ending it closes the connection at once.
  res.write(body);
  let drained = 0;
  let done = false;
  const close = (cut: boolean) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    res.end();
    if (cut) req.socket.destroy();
  };
  const timer = setTimeout(() => close(true), REFUSED_BODY_DRAIN_MS);
  req.on("data", (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > REFUSED_BODY_DRAIN_BYTES) close(true);
  });
  finished(req, () => close(false));
}

/** Builds the server on a reachable Redis; does not listen until start(). Throws if Redis is unreachable. */
export async function createApp(config: AppConfig, log: Logger = createLogger(config.logLevel as LogLevel)): Promise<App> {
  const redis = await connectRedis(config.redisUrl, "swarm-context", config.redisTimeoutMs);
  const keys = new Keys(config.keyPrefix);
  let feed: FeedHub | undefined;
  let state: StateGuard | undefined;
  const metrics = new Metrics(
    () => feed?.subscriberCount ?? 0,
    () => state?.current === "intact",
  );
  const fault = faultReporter(log, metrics);
  try {
    state = await StateGuard.open(redis, keys, config.stateCheckMs, {
      changed: (status) =>
        status === "intact"
          ? log.info("redis state", { state: status })
          : log.error("redis state", { state: status, ...(status === "lost" ? { fix: "README, Operations: Lost state" } : {}) }),
      roundTripMs: (ms) => metrics.redisRoundTripMs(ms),
    });
    const subscriberLimits = {
      changes: config.subscriberBuffer,
      bytes: config.subscriberBufferBytes,
      stallMs: config.subscriberStallMs,
      largestEntryBytes: largestEntryBytes(config),
    };
    feed = await FeedHub.open(config.redisUrl, redis, keys, subscriberLimits, (ms) => metrics.feedLagMs(ms), fault);
  } catch (err) {
    state?.close();
    redis.disconnect();
    throw err;
  }
  const contexts = new ContextStore(redis, keys, config);
  const ledger = new LedgerStore(redis, keys, config);
  const sweeper = config.leaseSweepMs > 0 ? new LeaseSweeper(() => ledger.sweep(), config.leaseSweepMs, (err) => fault("lease-sweeper", "lease sweep failed", err)) : undefined;
  // Answers at once while the connection is down, and within PING_TIMEOUT_MS otherwise: health
  // checks must not wait in the client's offline queue for its reconnect attempts.
  const pingRedis = async () => {
    if (redis.status !== "ready") throw new Error(`Redis connection is ${redis.status}`);
    const started = performance.now();
    await withTimeout(redis.ping(), PING_TIMEOUT_MS);
    return performance.now() - started;
  };
  const gate = new Gate(config.keys, redis, keys, config.rateLimit, fault);
  const limits = {
    maxDepth: config.maxQueryDepth,
    maxAliases: config.maxAliases,
    maxTokens: config.maxTokens,
    maxCost: config.maxCost,
    maxFieldRepeats: config.maxFieldRepeats,
  };
  const security = useSecurity(gate, limits);
  const observability = new Observability(log, metrics, security.principalOf);
  // Each subscription event is a response of its own, with its own reads.
  const subscribe = sharedSubscribe(maskError, (context) => ({ ...(context as RequestContext), reads: new ResponseReads(config.maxResponseBytes) }));
  const guard = state;
  const hub = feed;
  const originPolicy: OriginPolicy = { allowedOrigins: new Set(config.allowedOrigins), loopbackHostsOnly: config.keys === null };
  const yoga = createYoga<Record<string, unknown>, RequestContext>({
    schema,
    graphqlEndpoint: "/graphql",
    landingPage: false,
    // Pages of an allowed origin get CORS approval; the server's own need none, and any other is
    // refused in handle() before yoga. Keys go in the Authorization header, never in cookies, so
    // credentials are not allowed.
    cors: (request) => {
      const origin = request.headers.get("origin");
      return origin !== null && originPolicy.allowedOrigins.has(origin) ? { origin: [origin], credentials: false, exposedHeaders: ["x-request-id"] } : false;
    },
    logging: "warn",
    maskedErrors: { maskError },
    batching: config.maxBatch > 0 ? { limit: config.maxBatch } : false,
    plugins: [observability.plugin, security.plugin, useSubscribe(subscribe)],
    context: (initial): RequestContext => ({
      contexts,
      ledger,
      feed: hub,
      state: guard,
      pingRedis,
      reads: new ResponseReads(config.maxResponseBytes),
      // WebSocket operations bring their connection's principal; HTTP ones passed useSecurity.
      principal: (initial.principal as Principal | undefined) ?? security.principalOf(initial.request) ?? OPEN_PRINCIPAL,
    }),
  });

  const declaresTooLarge = (req: IncomingMessage) => Number(req.headers["content-length"]) > config.maxRequestBytes;
  let server: Server | undefined;
  let ws: { close(graceMs: number): Promise<void> } | undefined;
  let closing = false;
  /** The origin and host checks, the operations endpoints, and the request size bound, in front of yoga. */
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (closing) res.setHeader("connection", "close");
    const foreign = foreignRequest(req.headers, originPolicy);
    if (foreign) return refuseUnread(req, res, 403, foreign, { code: "FORBIDDEN" });
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/health") return json(res, 200, { status: "ok" });
    if (path === "/ready") {
      const ready = !closing && guard.current === "intact" && (await pingRedis().then(() => true, () => false));
      return json(res, ready ? 200 : 503, { ready, state: guard.current, shuttingDown: closing });
    }
    if (path === "/metrics") {
      try {
        if (gate.authenticate(req.headers.authorization).role !== "admin") {
          return jsonError(res, 403, "metrics are for admin keys", { code: "FORBIDDEN" });
        }
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        return jsonError(res, 401, err.message, err.extensions);
      }
      return res.writeHead(200, { "content-type": metrics.registry.contentType }).end(await metrics.render());
    }
    const tooLarge = () =>
      refuseUnread(req, res, 413, `request bodies are limited to ${config.maxRequestBytes} bytes`, {
        code: "LIMIT_EXCEEDED",
        limit: "requestBytes",
        max: config.maxRequestBytes,
      });
    if (declaresTooLarge(req)) return tooLarge();
    if (req.headers["content-length"] === undefined && req.method === "POST") {
      // A chunked body has no declared size: read it here, up to the bound, and hand it to yoga
      // (which takes a body already read from `req.body`). Past the bound the rest stays unread
      // (destroyOnReturn: false keeps the connection) for tooLarge to drain.
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > config.maxRequestBytes) return tooLarge();
        chunks.push(chunk);
      }
      (req as IncomingMessage & { body?: Buffer }).body = Buffer.concat(chunks);
    }
    return yoga(req, res);
  };

  return {
    yoga,
    log,
    start: () =>
      new Promise((resolve, reject) => {
        if (config.keys === null && !isLoopback(config.host)) {
          reject(new Error(`no API keys are configured, so this server only listens on loopback (127.0.0.1, ::1), not ${config.host}: configure keys (README, Security)`));
          return;
        }
        const onRequest = (req: IncomingMessage, res: ServerResponse) => {
          handle(req, res).catch((err: unknown) => {
            log.error("request handling failed", { error: err instanceof Error ? err.stack : String(err) });
            if (!res.headersSent) jsonError(res, 500, "Unexpected error.", { code: "INTERNAL_SERVER_ERROR" });
            else res.destroy();
          });
        };
        server = createServer(onRequest);
        // A client that asks before sending its body (Expect: 100-continue) is told to send it
        // only when it may: an oversized one gets its 413 instead, and need not send it at all.
        server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
          if (!declaresTooLarge(req)) res.writeContinue();
          onRequest(req, res);
        });
        // Node answers a request it cannot parse (headers over 16 KB, say) with a bare status:
        // answer with a coded error instead, as for every other refusal.
        server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
          if (!socket.writable) return socket.destroy();
          const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
          const body = tooLarge
            ? refusalBody("request headers are too large", { code: "LIMIT_EXCEEDED", limit: "headerBytes" })
            : refusalBody("malformed HTTP request", { code: "VALIDATION_FAILED" });
          socket.end(
            `HTTP/1.1 ${tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request"}\r\ncontent-type: application/json; charset=utf-8\r\n` +
              `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
          );
        });
        ws = attachGraphqlWs(server, yoga, { ...config, subscribe, gate, observability, fault, foreign: (request) => foreignRequest(request.headers, originPolicy) });
        server.once("error", reject);
        server.listen(config.port, config.host, () => {
          const { port } = server!.address() as AddressInfo;
          const host = config.host.includes(":") ? `[${config.host}]` : config.host;
          const url = `http://${host}:${port}/graphql`;
          log.info("listening", { url, auth: config.keys ? "api keys" : "open" });
          if (config.keys === null) {
            log.warn("OPEN MODE: no API keys are configured; anyone who can reach this loopback address is an admin. Configure keys before exposing the server (README, Security).", {
              host: config.host,
            });
          }
          resolve(url);
        });
      }),
    close: async () => {
      closing = true;
      const deadline = performance.now() + config.shutdownGraceMs;
      const remaining = () => Math.max(0, deadline - performance.now());
      // Stop taking connections. Responses from now on close theirs (handle() says so), and
      // connections that fall idle are closed, so that busy ones end with their last response.
      const closed = server ? new Promise<void>((resolve) => server!.close(() => resolve())) : undefined;
      const closeIdle = setInterval(() => server?.closeIdleConnections(), 20);
      server?.closeIdleConnections();
      // End every feed subscriber with the cursors to resume from, and let those last messages
      // and every in-flight request finish, within the grace.
      hub.endSubscribers();
      await ws?.close(remaining());
      if (closed) {
        const timer = setTimeout(() => server!.closeAllConnections(), remaining());
        await closed;
        clearTimeout(timer);
      }
      clearInterval(closeIdle);
      sweeper?.stop();
      guard.close();
      // Writes whose replies are pending get what is left of the grace (at least a second);
      // with Redis down they would wait for every reconnect attempt, so then the connections
      // are dropped instead.
      const drained = await withTimeout(contexts.drain(), Math.max(remaining(), 1_000)).then(
        () => true,
        () => false,
      );
      // Redis may be stalled: QUIT waits at most what is left of the grace (at least a second).
      const quitWaitMs = Math.max(remaining(), 1_000);
      await Promise.all([hub.close(drained, quitWaitMs), drained ? closeRedis(redis, quitWaitMs) : redis.disconnect()]);
      log.info("closed", { drained });
    },
  };
}
