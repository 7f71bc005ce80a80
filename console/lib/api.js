// The console's only way to the server: GraphQL over fetch (queries, mutations) and graphql-ws
// (subscriptions), with the key the operator signed in with, plus /metrics for admins.
import { createClient } from "../vendor/graphql-ws/client.js";

/** A refusal from the server: `code` is its extensions.code (UNAUTHENTICATED, VERSION_CONFLICT, ...). */
export class ApiError extends Error {
  constructor(errors, data = null) {
    super(errors[0]?.message ?? "request failed");
    this.errors = errors;
    this.data = data;
    this.extensions = errors[0]?.extensions ?? {};
    this.code = this.extensions.code ?? "INTERNAL_SERVER_ERROR";
  }
}

function refusal(message, code) {
  return new ApiError([{ message, extensions: { code } }]);
}

/**
 * The API for one key (null: open mode, no key sent). `subscribe(query, variables, sink)`: the
 * variables may be a function, called at every (re)subscribe, so that a resumed subscription
 * asks from its latest cursors; returns a function that ends it.
 */
export function createApi(key) {
  const authorization = key ? `Bearer ${key}` : undefined;
  const headers = { "content-type": "application/json", accept: "application/json", ...(authorization ? { authorization } : {}) };
  let ws;
  const reconnectListeners = new Set();

  async function query(document, variables = {}) {
    let res;
    try {
      res = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query: document, variables }) });
    } catch (err) {
      throw refusal(`the server did not answer: ${err.message}`, "UNAVAILABLE");
    }
    let body;
    try {
      body = await res.json();
    } catch {
      throw refusal(`the server answered HTTP ${res.status} without a GraphQL response`, res.status === 401 ? "UNAUTHENTICATED" : "UNAVAILABLE");
    }
    if (body.errors?.length) throw new ApiError(body.errors, body.data ?? null);
    return body.data;
  }

  function socket() {
    ws ??= createClient({
      url: `${location.origin.replace(/^http/, "ws")}/graphql`,
      connectionParams: authorization ? { authorization } : undefined,
      lazy: true,
      keepAlive: 10_000,
      // Reconnects re-send each subscription with its variables as they are then (see above).
      retryAttempts: Infinity,
      // 0.25-0.75 s after a drop, doubling up to 5-15 s: back soon after a blip, gentle while the server is away.
      retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 500 * 2 ** retries) * (0.5 + Math.random()))),
      shouldRetry: (event) => !(event && typeof event.code === "number" && event.code >= 4400 && event.code < 4500),
      on: { connected: (_socket, _payload, wasRetry) => wasRetry && reconnectListeners.forEach((listener) => listener()) },
    });
    return ws;
  }

  function subscribe(document, variables, sink) {
    const payload = {
      query: document,
      get variables() {
        return typeof variables === "function" ? variables() : variables;
      },
    };
    return socket().subscribe(payload, {
      next: (result) => (result.errors?.length ? sink.error(new ApiError(result.errors, result.data)) : sink.next(result.data)),
      error: (err) =>
        sink.error(Array.isArray(err) ? new ApiError(err) : err instanceof Error ? err : refusal(`the connection closed (${err?.code ?? "?"} ${err?.reason ?? ""})`, "UNAVAILABLE")),
      complete: () => sink.complete?.(),
    });
  }

  /** /metrics as text (admins only). */
  async function metrics() {
    const res = await fetch("/metrics", { headers: authorization ? { authorization } : {} });
    if (!res.ok) throw refusal(`/metrics answered ${res.status}`, res.status === 403 ? "FORBIDDEN" : "UNAVAILABLE");
    return res.text();
  }

  /** /ready as { ready, state, shuttingDown }. */
  async function ready() {
    const res = await fetch("/ready");
    return res.json();
  }

  /**
   * Calls `listener` after each WebSocket reconnect: subscriptions without cursors missed what
   * happened while it was down, so views that refresh on changes read again. Returns the function
   * that stops it.
   */
  function onReconnect(listener) {
    reconnectListeners.add(listener);
    return () => reconnectListeners.delete(listener);
  }

  return { query, subscribe, onReconnect, metrics, ready, close: () => ws?.dispose() };
}
