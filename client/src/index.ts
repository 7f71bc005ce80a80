/**
 * swarm-context's client for agents: `connect({ url, key })`, then `client.swarm(id)` for reads,
 * retried idempotent writes, read-modify-write, resumable watches, fenced locks and budgets.
 * docs/clients.md says when to use which and what each guarantees.
 */
import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import { DEFAULT_RETRY, type RetryOptions } from "./backoff.js";
import { SubscriptionTransport } from "./subscriptions.js";
import { Swarm } from "./swarm.js";
import { Endpoints, HttpTransport } from "./transport.js";

export { SwarmError } from "./errors.js";
export { diff, type PatchOperation } from "./diff.js";
export { AllocationHandle, type AllocateOptions, type Amounts } from "./allocation.js";
export type { HeldLock, LockOptions } from "./lock.js";
export type { Swarm, DocumentRead, UpdateOptions, Updater, WriteOptions, WriteResult } from "./swarm.js";
export type { Change, Resync, SliceUpdate, WatchItem, WatchOptions } from "./watch.js";
export type { RetryOptions } from "./backoff.js";
export type { ChangeKind, AllocationMode, AllocationStatus } from "./operations.js";

/** Options of `connect`. */
export interface ConnectOptions {
  /** The GraphQL endpoint (`http://host:4000/graphql`), or several, tried in turn on failure. */
  readonly url: string | readonly string[];
  /** An API key (docs/security.md); none in open mode. */
  readonly key?: string;
  /** This agent's name: the default holder of its locks and allocations (default: host:pid:random). */
  readonly agent?: string;
  /** Retries of each request (default: 8 attempts, waits from 50 ms doubling up to 2 s, with jitter). */
  readonly retry?: Partial<RetryOptions>;
  /** One HTTP attempt's timeout in ms (default 10,000); a timed-out write is retried with its opId. */
  readonly timeoutMs?: number;
  /** A WebSocket class for subscriptions (default: the global one, else the `ws` package's). */
  readonly webSocketImpl?: unknown;
}

/** A connection to a swarm-context deployment. */
export interface Client {
  /** The swarm (context) `id`; nothing is read until a method is called. */
  swarm(id: string): Swarm;
  /** Closes the subscriptions' WebSocket; watches end. HTTP needs no closing. */
  close(): Promise<void>;
}

/** Connects to the server(s) at `options.url` (lazily: nothing is sent before the first call). */
export function connect(options: ConnectOptions): Client {
  const endpoints = new Endpoints(typeof options.url === "string" ? [options.url] : [...options.url]);
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  const authorization: Record<string, string> = options.key ? { authorization: `Bearer ${options.key}` } : {};
  const settings = {
    http: new HttpTransport(endpoints, authorization, retry, options.timeoutMs ?? 10_000),
    subscriptions: new SubscriptionTransport(endpoints, authorization, options.webSocketImpl),
    retry,
    agent: options.agent ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
  };
  return {
    swarm: (id) => new Swarm(id, settings),
    close: () => settings.subscriptions.close(),
  };
}
