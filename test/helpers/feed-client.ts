import { print } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

export type Transport = "ws" | "sse";
export const TRANSPORTS: readonly Transport[] = ["ws", "sse"];

export interface ErrorJson {
  readonly message: string;
  readonly extensions?: Record<string, unknown>;
}

/** A live subscription seen from the client: what it has received so far. */
export interface FeedClient<T> {
  readonly values: T[];
  readonly errors: ErrorJson[];
  /** Whether the server has ended the stream. */
  readonly ended: boolean;
  /** Resolves as soon as `check` holds for what was received; rejects if the stream ends first or after `timeoutMs`. */
  until(check: (client: FeedClient<T>) => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** Resolves when the server ends the stream. */
  untilEnded(timeoutMs?: number): Promise<void>;
  close(): void;
}

type Listener = () => void;

function makeClient<T>(close: () => void): { client: FeedClient<T>; push(data: T | null, errors?: ErrorJson[]): void; end(): void } {
  const listeners = new Set<Listener>();
  const notify = () => listeners.forEach((l) => l());
  const client: FeedClient<T> & { ended: boolean } = {
    values: [],
    errors: [],
    ended: false,
    until(check, what, timeoutMs = 15_000) {
      return new Promise<void>((resolve, reject) => {
        const test = () => {
          if (check(client)) done(resolve);
          else if (client.ended) done(() => reject(new Error(`stream ended before ${what}; errors: ${JSON.stringify(client.errors)}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(client.values).slice(0, 2000)}`))), timeoutMs);
        const done = (settle: () => void) => {
          clearTimeout(timer);
          listeners.delete(test);
          settle();
        };
        listeners.add(test);
        test();
      });
    },
    untilEnded(timeoutMs) {
      return client.until((c) => c.ended, "the end of the stream", timeoutMs).catch((err: Error) => {
        if (!client.ended) throw err;
      });
    },
    close,
  };
  return {
    client,
    push(data, errors) {
      if (data) client.values.push(data);
      if (errors) client.errors.push(...errors);
      notify();
    },
    end() {
      client.ended = true;
      notify();
    },
  };
}

/** Subscribes over graphql-ws (one WebSocket connection per subscription) or over SSE. */
export function subscribe<T, V>(transport: Transport, url: string, document: TypedDocumentNode<T, V>, variables: V): FeedClient<T> {
  return transport === "ws" ? subscribeWs(url, document, variables) : subscribeSse(url, document, variables);
}

function subscribeWs<T, V>(url: string, document: TypedDocumentNode<T, V>, variables: V): FeedClient<T> {
  const ws = createClient({ url: url.replace(/^http/, "ws"), webSocketImpl: WebSocket, retryAttempts: 0, lazy: true });
  const feed = makeClient<T>(() => void ws.dispose());
  ws.subscribe<T>(
    { query: print(document), variables: variables as Record<string, unknown> },
    {
      next: (result) => feed.push((result.data as T) ?? null, result.errors as ErrorJson[] | undefined),
      error: (err) => {
        feed.push(null, Array.isArray(err) ? (err as ErrorJson[]) : [{ message: String((err as Error).message ?? err) }]);
        feed.end();
      },
      complete: () => feed.end(),
    },
  );
  return feed.client;
}

function subscribeSse<T, V>(url: string, document: TypedDocumentNode<T, V>, variables: V): FeedClient<T> {
  const abort = new AbortController();
  const feed = makeClient<T>(() => abort.abort());
  void (async () => {
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        body: JSON.stringify({ query: print(document), variables }),
        signal: abort.signal,
      });
      const decoder = new TextDecoder();
      let buffer = "";
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).trim())
            .join("\n");
          if (event.startsWith("event: next") || (!event.startsWith("event:") && data)) {
            const result = JSON.parse(data) as { data?: T; errors?: ErrorJson[] };
            feed.push(result.data ?? null, result.errors);
          }
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) feed.push(null, [{ message: String(err) }]);
    }
    feed.end();
  })();
  return feed.client;
}
