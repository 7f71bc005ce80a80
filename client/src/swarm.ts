import { randomUUID } from "node:crypto";
import { backoffMs, sleep, type RetryOptions } from "./backoff.js";
import { diff, type PatchOperation } from "./diff.js";
import { SwarmError } from "./errors.js";
import { AllocationHandle, amountList, type AllocateOptions, type Amounts, type LedgerCalls } from "./allocation.js";
import { withLock, type HeldLock, type LockCalls, type LockOptions } from "./lock.js";
import type { SubscriptionTransport } from "./subscriptions.js";
import type { HttpTransport } from "./transport.js";
import { changesPosition, resumable, slicePosition, type SliceUpdate, type WatchItem, type WatchOptions } from "./watch.js";

/** Options of a write. */
export interface WriteOptions {
  /** Compare-and-set: refused with VERSION_CONFLICT unless the context is at this version. */
  readonly expectedVersion?: number;
  /** Why; recorded on the change-feed entry. */
  readonly reason?: string;
  /** The idempotency key (default: a new random one per call, kept across its retries). */
  readonly opId?: string;
  /** A lock's fencing token (withLock's `lock.patch` / `lock.merge` set it). */
  readonly fence?: { readonly lock: string; readonly token: number };
}

/** Where the context stands after a write. */
export interface WriteResult {
  readonly version: number;
  readonly seq: number;
}

/** The whole document as of one version. */
export interface DocumentRead {
  readonly version: number;
  readonly seq: number;
  readonly document: Record<string, unknown>;
}

/** Options of `update`. */
export interface UpdateOptions {
  /** Read-modify-write rounds before giving up with VERSION_CONFLICT (default 50). */
  readonly attempts?: number;
  readonly reason?: string;
}

/** What `update`'s function returns: the new document, or the JSON Patch to apply. */
export type Updater = (document: Record<string, unknown>, version: number) => Record<string, unknown> | readonly PatchOperation[] | Promise<Record<string, unknown> | readonly PatchOperation[]>;

const DEFAULT_UPDATE_ATTEMPTS = 50;

/** The client's defaults that a Swarm uses. */
export interface SwarmSettings {
  readonly http: HttpTransport;
  readonly subscriptions: SubscriptionTransport;
  readonly retry: RetryOptions;
  readonly agent: string;
}

/** One swarm's context, ledger and locks (`client.swarm(id)`). */
export class Swarm {
  constructor(
    readonly id: string,
    private readonly settings: SwarmSettings,
  ) {}

  /** The whole document with its version and seq; NOT_FOUND when there is no such context. */
  async document(): Promise<DocumentRead> {
    const { context } = await this.settings.http.request("ClientDocument", { id: this.id });
    return { ...this.found(context), document: context!.document as Record<string, unknown> };
  }

  /** The values at `paths` (JSON Pointers; null where one does not resolve), with the version and seq they are of. */
  async slice(paths: readonly string[]): Promise<SliceUpdate> {
    const { context } = await this.settings.http.request("ClientSlice", { id: this.id, paths: [...paths] });
    return { ...this.found(context), slice: context!.slice as Record<string, unknown> };
  }

  /** The value at `path` (a JSON Pointer), or null where it does not resolve. */
  async value(path: string): Promise<unknown> {
    const { context } = await this.settings.http.request("ClientValue", { id: this.id, path });
    if (!context) throw this.notFound();
    return context.value;
  }

  /** Creates the context at version 1; ALREADY_EXISTS if it exists (a retry of this call is answered as the first). */
  async create(document: Record<string, unknown>, options: Pick<WriteOptions, "opId" | "reason"> = {}): Promise<WriteResult> {
    const { createContext } = await this.settings.http.request("ClientCreate", { id: this.id, document, opId: options.opId ?? randomUUID(), reason: options.reason ?? null });
    return createContext;
  }

  /**
   * Applies JSON Patch `ops` (RFC 6902, all or nothing). Retried with backoff on UNAVAILABLE,
   * RATE_LIMITED and network errors, with one opId: applied at most once, however often sent.
   */
  async patch(ops: readonly PatchOperation[], options: WriteOptions = {}): Promise<WriteResult> {
    const { patchContext } = await this.settings.http.request("ClientPatch", { id: this.id, patch: ops.map((op) => ({ ...op })), ...this.writeVariables(options) });
    return patchContext;
  }

  /** Applies JSON Merge Patch `value` (RFC 7386: null deletes a member); retried as `patch` is. */
  async merge(value: Record<string, unknown>, options: WriteOptions = {}): Promise<WriteResult> {
    const { mergeContext } = await this.settings.http.request("ClientMerge", { id: this.id, merge: value, ...this.writeVariables(options) });
    return mergeContext;
  }

  /**
   * Read-modify-write: reads the document, calls `fn(document, version)` and writes what it
   * returns (a new document, written as the patch between the two, or JSON Patch operations)
   * with expectedVersion; on VERSION_CONFLICT it reads again and calls `fn` again, up to
   * `attempts` rounds, then throws VERSION_CONFLICT saying so. `fn` may run more than once, so it
   * should only compute. Nothing is written when it returns the document unchanged.
   */
  async update(fn: Updater, options: UpdateOptions = {}): Promise<WriteResult> {
    const attempts = options.attempts ?? DEFAULT_UPDATE_ATTEMPTS;
    let conflict: SwarmError | undefined;
    for (let round = 0; round < attempts; round++) {
      if (round > 0) await sleep(backoffMs(this.settings.retry, round - 1));
      const read = await this.document();
      const before = structuredClone(read.document);
      const result = await fn(read.document, read.version);
      const ops = Array.isArray(result) ? (result as readonly PatchOperation[]) : diff(before, result);
      if (ops.length === 0) return { version: read.version, seq: read.seq };
      try {
        return await this.patch(ops, { expectedVersion: read.version, reason: options.reason });
      } catch (err) {
        if (!(err instanceof SwarmError) || err.code !== "VERSION_CONFLICT") throw err;
        conflict = err;
      }
    }
    throw new SwarmError(
      "VERSION_CONFLICT",
      `update gave up after ${attempts} rounds: the context changed between each read and its write (last seen at version ${String(conflict!.extensions.currentVersion)})`,
      { ...conflict!.extensions, attempts },
      { cause: conflict },
    );
  }

  /**
   * The context's changes as they happen, in seq order, from `options.after` (default: now):
   * each change once, and `{ resync }` where changes were lost to retention, never a silent gap.
   * Reconnects and resumes from its cursor across network failures, server restarts and
   * instances that die (with several `url`s, the next one). Ends on `break` or `options.signal`.
   */
  async *watch(options: WatchOptions = {}): AsyncGenerator<WatchItem, void, undefined> {
    const start = options.after ?? (await this.settings.http.request("ClientHead", { id: this.id })).context?.seq ?? 0;
    yield* resumable(this.settings.subscriptions, "ClientChanges", changesPosition(this.id, options, start), this.settings.retry, options);
  }

  /**
   * The values at `paths` now, then again whenever a change alters one of them (over
   * `maxUpdatesPerSecond`, only the latest). Resumes across disconnects with the value current
   * then; a value is never yielded twice. Throws NOT_FOUND when the context does not exist or is
   * deleted.
   */
  watchSlice(paths: readonly string[], options: { readonly maxUpdatesPerSecond?: number; readonly signal?: AbortSignal } = {}): AsyncGenerator<SliceUpdate, void, undefined> {
    return resumable(this.settings.subscriptions, "ClientWatchSlice", slicePosition(this.id, paths, options.maxUpdatesPerSecond), this.settings.retry, options);
  }

  /**
   * Runs `fn` holding lock `name`: acquired with backoff, renewed in the background, released at
   * the end or on error. Write through `lock.patch` / `lock.merge` (they carry the fencing
   * token); `lock.lost` tells `fn` if the lease is lost, after which those writes are refused
   * with STALE_FENCE. Returns what `fn` returns.
   */
  withLock<T>(name: string, fn: (lock: HeldLock) => Promise<T> | T, options: LockOptions = {}): Promise<T> {
    return withLock(this.lockCalls(), name, fn, { ...options, holder: options.holder ?? this.settings.agent }, this.settings.retry);
  }

  /**
   * Takes an allocation from the budget: `request` per kind (or `options.profile`'s amounts).
   * The handle renews a lease in the background and must be released: `await using` or
   * try/finally with `release()`. INSUFFICIENT_RESOURCES (with `extensions.available`) when the
   * budget cannot cover it.
   */
  async allocate(request?: Amounts, options: AllocateOptions = {}): Promise<AllocationHandle> {
    const calls = this.ledgerCalls();
    return new AllocationHandle(calls, await calls.allocate(null, request, options));
  }

  private writeVariables(options: WriteOptions) {
    return {
      expectedVersion: options.expectedVersion ?? null,
      fence: options.fence ? { ...options.fence } : null,
      opId: options.opId ?? randomUUID(),
      reason: options.reason ?? null,
    };
  }

  private lockCalls(): LockCalls {
    const { http } = this.settings;
    const contextId = this.id;
    return {
      acquire: async (name, holder, leaseMs) => (await http.request("ClientAcquireLock", { contextId, name, holder, leaseMs, opId: randomUUID() })).acquireLock,
      renew: async (name, token, leaseMs) => (await http.request("ClientRenewLock", { contextId, name, token, leaseMs, opId: randomUUID() })).renewLock,
      release: (name, token) => http.request("ClientReleaseLock", { contextId, name, token, opId: randomUUID() }),
      patch: (ops, options) => this.patch(ops, options),
      merge: (value, options) => this.merge(value, options),
    };
  }

  private ledgerCalls(): LedgerCalls {
    const { http, agent } = this.settings;
    const contextId = this.id;
    return {
      allocate: async (parentId, request, options) =>
        (
          await http.request("ClientAllocate", {
            contextId,
            parentId,
            request: request ? amountList(request) : null,
            profile: options.profile ?? null,
            mode: options.mode ?? "EXACT",
            leaseMs: options.leaseMs ?? null,
            holder: options.holder ?? agent,
            purpose: options.purpose ?? null,
            reason: options.reason ?? null,
            opId: randomUUID(),
          })
        ).allocate,
      report: async (allocationId, usage) => (await http.request("ClientReportUsage", { allocationId, usage: amountList(usage), opId: randomUUID() })).reportUsage,
      renew: async (allocationId, leaseMs) => (await http.request("ClientRenewAllocation", { allocationId, leaseMs, opId: randomUUID() })).renewAllocation,
      release: async (allocationId, usage) => (await http.request("ClientRelease", { allocationId, usage: usage ? amountList(usage) : null, opId: randomUUID() })).release,
    };
  }

  private found<T>(context: T | null): T {
    if (!context) throw this.notFound();
    return context;
  }

  private notFound(): SwarmError {
    return new SwarmError("NOT_FOUND", `context ${this.id} does not exist`, { id: this.id });
  }
}
