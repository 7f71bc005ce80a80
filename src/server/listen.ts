import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../observability/logger.js";
import { isLoopback } from "../security/request-origin.js";
import { answerClientError, jsonError } from "./http-answers.js";
import { declaresTooLarge } from "./routes.js";

/** Where and how to listen. */
export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  readonly maxRequestBytes: number;
  /** Whether API keys are configured: without, the server listens on loopback only. */
  readonly keyed: boolean;
  readonly log: Logger;
}

/**
 * Creates the HTTP server around `handle`, lets `attach` add to it (the WebSocket transport), and
 * listens on options.host:options.port; resolves to the server and the GraphQL endpoint's URL.
 * Refuses to listen beyond loopback in open mode. A failing handler is answered with a coded 500
 * (or has its connection destroyed once the answer has started) and logged.
 */
export function listen(
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  attach: (server: Server) => void,
  options: ListenOptions,
): Promise<{ server: Server; url: string }> {
  const { host, port, maxRequestBytes, keyed, log } = options;
  return new Promise((resolve, reject) => {
    if (!keyed && !isLoopback(host)) {
      reject(new Error(`no API keys are configured, so this server only listens on loopback (127.0.0.1, ::1), not ${host}: configure keys (docs/security.md)`));
      return;
    }
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      handle(req, res).catch((err: unknown) => {
        log.error("request handling failed", { error: err instanceof Error ? err.stack : String(err) });
        if (!res.headersSent) jsonError(res, 500, "Unexpected error.", { code: "INTERNAL_SERVER_ERROR" });
        else res.destroy();
      });
    };
    const server = createServer(onRequest);
    // A client that asks before sending its body (Expect: 100-continue) is told to send it only
    // when it may: an oversized one gets its 413 instead, and need not send it at all.
    server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
      if (!declaresTooLarge(req, maxRequestBytes)) res.writeContinue();
      onRequest(req, res);
    });
    server.on("clientError", answerClientError);
    attach(server);
    server.once("error", reject);
    server.listen(port, host, () => {
      const { port: bound } = server.address() as AddressInfo;
      const url = `http://${host.includes(":") ? `[${host}]` : host}:${bound}/graphql`;
      // GraphiQL is the GraphQL URL in a browser; the console is beside it.
      log.info("listening", { url, console: new URL("/console/", url).href, auth: keyed ? "api keys" : "open" });
      if (!keyed) {
        log.warn("OPEN MODE: no API keys are configured; anyone who can reach this loopback address is an admin. Configure keys before exposing the server (docs/security.md).", {
          host,
        });
      }
      resolve({ server, url });
    });
  });
}
