import type { IncomingMessage, ServerResponse } from "node:http";
import type { YogaServerInstance } from "graphql-yoga";
import type { RequestContext } from "../../resolvers/request-context.js";
import { AppError } from "../errors.js";
import type { Metrics } from "../observability/metrics.js";
import type { StateGuard } from "../redis/state-guard.js";
import type { Gate } from "../security/gate.js";
import { foreignRequest, type OriginPolicy } from "../security/request-origin.js";
import { json, jsonError, refuseUnread } from "./http-answers.js";
import type { GraphiQL } from "./graphiql.js";
import type { StaticFiles } from "./static-files.js";

/** What the HTTP routes need. */
export interface Routes {
  readonly yoga: YogaServerInstance<Record<string, unknown>, RequestContext>;
  readonly gate: Gate;
  readonly metrics: Metrics;
  readonly state: StateGuard;
  readonly originPolicy: OriginPolicy;
  /** Largest request body, in bytes. */
  readonly maxRequestBytes: number;
  /** Round-trip time to Redis in ms, or throws when it does not answer. */
  readonly pingRedis: () => Promise<number>;
  /** Whether the server is shutting down: /ready says so and every answer closes its connection. */
  readonly closing: () => boolean;
  /** The console's files (/console/...). */
  readonly files: StaticFiles;
  /** GraphiQL: its page (a browser's GET of the GraphQL endpoint) and its files (/graphiql/...). */
  readonly graphiql: GraphiQL;
}

/** Whether a request declares a body larger than `maxRequestBytes`. */
export function declaresTooLarge(req: IncomingMessage, maxRequestBytes: number): boolean {
  return Number(req.headers["content-length"]) > maxRequestBytes;
}

/**
 * The HTTP handler: the origin and host checks, the operations endpoints (/health, /ready,
 * /metrics), the console's files (/console/), GraphiQL (/graphql for browsers, /graphiql/), and
 * the request size bound, in front of yoga (GraphQL at /graphql).
 */
export function routeRequests(routes: Routes): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { yoga, gate, metrics, state, originPolicy, maxRequestBytes, pingRedis, closing, files, graphiql } = routes;
  return async (req, res) => {
    if (closing()) res.setHeader("connection", "close");
    const foreign = foreignRequest(req.headers, originPolicy);
    if (foreign) return refuseUnread(req, res, 403, foreign, { code: "FORBIDDEN" });
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/health") return json(res, 200, { status: "ok" });
    if (files.has(path)) return files.serve(req, res, path);
    if (path === "/console") return void res.writeHead(308, { location: "/console/" }).end();
    if (path.startsWith("/console/")) return jsonError(res, 404, `no console file ${path}`, { code: "NOT_FOUND" });
    if (graphiql.handles(req, path)) return graphiql.serve(req, res, path);
    if (path === "/ready") {
      const ready = !closing() && state.serving && (await pingRedis().then(() => true, () => false));
      return json(res, ready ? 200 : 503, { ready, state: state.current, shuttingDown: closing() });
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
      return void res.writeHead(200, { "content-type": metrics.registry.contentType }).end(await metrics.render());
    }
    const tooLarge = () =>
      refuseUnread(req, res, 413, `request bodies are limited to ${maxRequestBytes} bytes`, {
        code: "LIMIT_EXCEEDED",
        limit: "requestBytes",
        max: maxRequestBytes,
      });
    if (declaresTooLarge(req, maxRequestBytes)) return tooLarge();
    if (req.headers["content-length"] === undefined && req.method === "POST") {
      // A chunked body has no declared size: read it here, up to the bound, and hand it to yoga
      // (which takes a body already read from `req.body`). Past the bound the rest stays unread
      // (destroyOnReturn: false keeps the connection) for tooLarge to drain.
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxRequestBytes) return tooLarge();
        chunks.push(chunk);
      }
      (req as IncomingMessage & { body?: Buffer }).body = Buffer.concat(chunks);
    }
    await yoga(req, res);
  };
}
