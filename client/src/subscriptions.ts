import { createClient, type Client as WsClient } from "graphql-ws";
import { errorOf, SwarmError, TRANSIENT_CODES } from "./errors.js";
import { documents } from "./operations.js";
import type { Endpoints, OperationName, Result, Variables } from "./transport.js";

/** What an open subscription reports, in order. */
export type SubscriptionEvent<R> =
  | { readonly data: R }
  /** The subscription ended with an error; `resumable` when subscribing again may succeed. */
  | { readonly error: SwarmError; readonly resumable: boolean }
  /** The server ended it without an error. */
  | { readonly complete: true };

/** A ping every 10 s; a connection that does not answer one within 5 s is closed and replaced. */
const KEEP_ALIVE_MS = 10_000;
const PONG_TIMEOUT_MS = 5_000;

/** Close codes that no retry will cure: bad request, and a key the server does not take. */
const FINAL_CLOSE_CODES: ReadonlyMap<number, string> = new Map([
  [4400, "INTERNAL_SERVER_ERROR"],
  [4401, "UNAUTHENTICATED"],
  [4403, "UNAUTHENTICATED"],
]);

/**
 * GraphQL subscriptions over one graphql-ws WebSocket, opened on first use, to the current
 * endpoint. The socket is not reconnected by graphql-ws: each subscription resumes itself from
 * its own cursor (watch.ts), which a blind re-subscribe with the first variables would not do.
 */
export class SubscriptionTransport {
  private client: Promise<WsClient> | undefined;
  private socketUrl = "";

  constructor(
    private readonly endpoints: Endpoints,
    private readonly connectionParams: Readonly<Record<string, string>>,
    private readonly webSocketImpl: unknown,
  ) {}

  /** Starts operation `name`; `deliver` gets its events until the returned function is called. */
  async open<N extends OperationName>(name: N, variables: Variables<N>, deliver: (event: SubscriptionEvent<Result<N>>) => void): Promise<() => void> {
    const client = await (this.client ??= this.connect());
    return client.subscribe<Result<N>>(
      { query: documents[name], variables: variables as Record<string, unknown>, operationName: name },
      {
        next: (result) => {
          if (result.errors?.length) {
            const error = errorOf(result.errors[0]! as { message?: string; extensions?: Record<string, unknown> });
            deliver({ error, resumable: error.code === "RESYNC_REQUIRED" || TRANSIENT_CODES.has(error.code) });
          } else if (result.data) deliver({ data: result.data });
        },
        error: (err) => deliver(this.failure(err)),
        complete: () => deliver({ complete: true }),
      },
    );
  }

  /** Closes the socket; open subscriptions complete. */
  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) await (await client).dispose();
  }

  private async connect(): Promise<WsClient> {
    const webSocketImpl = this.webSocketImpl ?? (globalThis as { WebSocket?: unknown }).WebSocket ?? (await import("ws")).default;
    let pongTimer: ReturnType<typeof setTimeout> | undefined;
    let socket: { close(code: number, reason: string): void; readyState: number } | undefined;
    return createClient({
      url: () => {
        this.socketUrl = this.endpoints.current();
        return this.socketUrl.replace(/^http/, "ws");
      },
      webSocketImpl,
      connectionParams: this.connectionParams,
      retryAttempts: 0,
      lazyCloseTimeout: 0,
      keepAlive: KEEP_ALIVE_MS,
      on: {
        connected: (s) => (socket = s as typeof socket),
        ping: (received) => {
          if (!received) pongTimer = setTimeout(() => socket?.readyState === 1 && socket.close(4408, "Pong timeout"), PONG_TIMEOUT_MS);
        },
        pong: (received) => {
          if (received) clearTimeout(pongTimer);
        },
        closed: (event) => {
          clearTimeout(pongTimer);
          const code = (event as { code?: number } | undefined)?.code;
          if (code !== 1000) this.endpoints.failed(this.socketUrl);
        },
      },
    });
  }

  private failure(err: unknown): { error: SwarmError; resumable: boolean } {
    if (Array.isArray(err) && err.length > 0) {
      const error = errorOf(err[0] as { message?: string; extensions?: Record<string, unknown> });
      return { error, resumable: TRANSIENT_CODES.has(error.code) };
    }
    const close = err as { code?: unknown; reason?: unknown };
    if (typeof close?.code === "number") {
      const final = FINAL_CLOSE_CODES.get(close.code);
      const error = new SwarmError(final ?? "UNAVAILABLE", `WebSocket closed: ${close.code} ${String(close.reason ?? "")}`.trim(), { closeCode: close.code });
      return { error, resumable: final === undefined };
    }
    return { error: new SwarmError("UNAVAILABLE", `WebSocket failed: ${(err as Error)?.message ?? String(err)}`, {}, { cause: err }), resumable: true };
  }
}
