import { print } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { createClient } from "graphql-ws";
import { expect } from "vitest";
import WebSocket from "ws";
import { ContextChangesDocument, type ContextChangesSubscription } from "../gql/graphql.js";

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

/** What a subscriber presents: `authorization` is "Bearer <key>" (a header over SSE, connectionParams over WebSocket). */
export interface SubscribeOptions {
  readonly authorization?: string;
}

/** Subscribes over graphql-ws (one WebSocket connection per subscription) or over SSE. */
export function subscribe<T, V>(
  transport: Transport,
  url: string,
  document: TypedDocumentNode<T, V>,
  variables: V,
  options: SubscribeOptions = {},
): FeedClient<T> {
  return transport === "ws" ? subscribeWs(url, document, variables, options) : subscribeSse(url, document, variables, options);
}

function subscribeWs<T, V>(url: string, document: TypedDocumentNode<T, V>, variables: V, options: SubscribeOptions): FeedClient<T> {
  const ws = createClient({
    url: url.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: true,
    connectionParams: options.authorization ? { authorization: options.authorization } : undefined,
  });
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

function subscribeSse<T, V>(url: string, document: TypedDocumentNode<T, V>, variables: V, options: SubscribeOptions): FeedClient<T> {
  const abort = new AbortController();
  const feed = makeClient<T>(() => abort.abort());
  void (async () => {
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "text/event-stream",
          ...(options.authorization ? { authorization: options.authorization } : {}),
        },
        body: JSON.stringify({ query: print(document), variables }),
        signal: abort.signal,
      });
      for await (const result of sseResults<T>(res)) feed.push(result.data ?? null, result.errors);
    } catch (err) {
      if (!abort.signal.aborted) feed.push(null, [{ message: String(err) }]);
    }
    feed.end();
  })();
  return feed.client;
}

/** The results of an SSE response, as its events arrive. */
export async function* sseResults<T>(res: Response): AsyncGenerator<{ data?: T | null; errors?: ErrorJson[] }> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const result = sseResult<T>(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (result) yield result;
    }
  }
}

/** The result an SSE event carries (`event: next`, or an unnamed event with data), else null. */
export function sseResult<T>(event: string): { data?: T | null; errors?: ErrorJson[] } | null {
  const data = event
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).trim())
    .join("\n");
  if (!event.startsWith("event: next") && (event.startsWith("event:") || !data)) return null;
  return JSON.parse(data) as { data?: T | null; errors?: ErrorJson[] };
}

/** A message of the graphql-transport-ws protocol as received. */
export interface RawMessage<T> {
  readonly type: string;
  readonly payload?: { data?: T | null; errors?: ErrorJson[] };
}

export interface RawSubscription<T> {
  readonly socket: WebSocket;
  /** Every message received, in order. */
  readonly messages: RawMessage<T>[];
  /** Resolves once the server acknowledged the connection and the subscribe is sent. */
  readonly subscribed: Promise<void>;
  /** Resolves when the server completes the subscription or answers it with an error. */
  readonly ended: Promise<void>;
  /** Resolves once `check(messages)` holds, checked as each message arrives; rejects after `timeoutMs` (default 15 s). */
  until(check: (messages: readonly RawMessage<T>[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
}

/**
 * One subscription over a bare `ws` socket speaking graphql-transport-ws, for tests that need
 * the socket itself (to stop reading, say) or the raw messages.
 */
export function rawWsSubscription<T>(url: string, query: string, variables: Record<string, unknown> = {}): RawSubscription<T> {
  const socket = new WebSocket(url.replace(/^http/, "ws"), "graphql-transport-ws");
  const messages: RawMessage<T>[] = [];
  let acknowledged!: () => void;
  let finished!: () => void;
  const subscribed = new Promise<void>((resolve) => (acknowledged = resolve));
  const ended = new Promise<void>((resolve) => (finished = resolve));
  const waiters = new Set<() => void>();
  socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init" })));
  socket.on("message", (data) => {
    const message = JSON.parse(String(data)) as RawMessage<T>;
    messages.push(message);
    if (message.type === "connection_ack") {
      socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
      acknowledged();
    }
    if (message.type === "complete" || message.type === "error") finished();
    for (const waiter of [...waiters]) waiter();
  });
  const until = (check: (messages: readonly RawMessage<T>[]) => boolean, what: string, timeoutMs = 15_000) =>
    new Promise<void>((resolve, reject) => {
      const waiter = () => {
        if (!check(messages)) return;
        waiters.delete(waiter);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(messages).slice(0, 2000)}`));
      }, timeoutMs);
      waiters.add(waiter);
      waiter();
    });
  return { socket, messages, subscribed, ended, until };
}

/** The seqs from `from` to `to`, both included. */
export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The seqs of every change a contextChanges subscriber received, in order. */
export const seqsOf = (feed: FeedClient<ContextChangesSubscription>): number[] => feed.values.flatMap((v) => v.contextChanges.changes.map((c) => c.seq));

/**
 * Asserts that `feed` (over `transport`, watching context `id`) was ended by a shutdown: one
 * UNAVAILABLE error whose extensions.after is a cursor at the last seq it got. Then resumes from
 * that cursor at `url` and resolves, once `lastSeq` has arrived, with every seq seen before and
 * after the end.
 */
export async function resumeAfterShutdown(
  feed: FeedClient<ContextChangesSubscription>,
  transport: Transport,
  url: string,
  id: string,
  lastSeq: number,
): Promise<number[]> {
  await feed.untilEnded();
  expect(feed.errors.map((e) => e.extensions?.code), transport).toEqual(["UNAVAILABLE"]);
  const after = feed.errors[0]!.extensions!.after as { contextId: string; seq: number }[];
  expect(after).toEqual([{ contextId: id, seq: seqsOf(feed).at(-1) }]);
  const resumed = subscribe(transport, url, ContextChangesDocument, { contextIds: [id], after });
  try {
    await resumed.until((f) => seqsOf(f).includes(lastSeq), "the last change");
    return [...seqsOf(feed), ...seqsOf(resumed)];
  } finally {
    resumed.close();
  }
}
