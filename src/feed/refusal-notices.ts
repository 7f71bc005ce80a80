import type { RedisClient } from "../redis/clients.js";
import { AppError, ErrorCode } from "../errors.js";
import type { Amount } from "../model/allocation.js";
import type { ReportFault } from "../observability/faults.js";
import { isConnectionFailure } from "../redis/clients.js";

/** The ledger mutations whose refusals are noticed, by their field names. */
export type LedgerOperation = "allocate" | "reportUsage" | "renewAllocation" | "release";

/** One refused ledger operation, as published (without `dropped`, which is per subscriber). */
export interface RefusalNotice {
  readonly contextId: string;
  /** When the refusal was answered, an ISO instant (the refusing instance's clock). */
  readonly at: string;
  readonly actor: string;
  readonly operation: LedgerOperation;
  /** One of LEDGER_REFUSALS (errors.ts). */
  readonly code: string;
  readonly message: string;
  /** The allocation the operation named (reportUsage, renewAllocation, release). */
  readonly allocationId: string | null;
  /** allocate's parentId (null: from the budget, or another operation). */
  readonly parentId: string | null;
  /** What was asked for, where known (at most MAX_KINDS kinds). */
  readonly requested: readonly Amount[] | null;
  /** What could be had, where known (at most MAX_KINDS kinds). */
  readonly available: readonly Amount[] | null;
}

/** A notice as one subscriber receives it. */
export interface LedgerRefusal extends RefusalNotice {
  /** Notices this subscriber lost just before this one, because its buffer was full. */
  readonly dropped: number;
}

/** Kinds kept of `requested` and `available`, and characters of `message`: every notice stays small. */
export const MAX_KINDS = 100;
export const MAX_MESSAGE = 1000;
/** A subscriber's buffer: at most this many notices and bytes (the oldest go first; at least one is kept). */
export const BUFFER_NOTICES = 100;
const BUFFER_BYTES = 256 * 1024;

function bounded(notice: RefusalNotice): RefusalNotice {
  return {
    ...notice,
    message: notice.message.slice(0, MAX_MESSAGE),
    requested: notice.requested?.slice(0, MAX_KINDS) ?? null,
    available: notice.available?.slice(0, MAX_KINDS) ?? null,
  };
}

/**
 * Live notices of refused ledger operations, on every server instance. A refusal changes nothing,
 * so it has no feed entry: the instance that refused PUBLISHes a small notice on one channel
 * (Keys.refusalsChannel), without waiting for it, and every instance, subscribed once (through
 * FeedHub's connection), hands it to that context's subscribers here. Best effort: a subscriber
 * sees the notices published while it listens, none from before, and none lost to a dropped
 * pub/sub connection are recovered. Each subscriber's buffer is bounded (BUFFER_NOTICES, and
 * 256 KiB); over it the oldest notices are dropped and the next one delivered says how many.
 */
export class RefusalNotices {
  private readonly byContext = new Map<string, Set<NoticeQueue>>();
  private shuttingDown = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly channel: string,
    private readonly fault: ReportFault,
  ) {}

  /**
   * Publishes `notice` to every instance, fire and forget: never throws, never delays the caller.
   * A lost connection drops the notice quietly; any other failure is reported as a fault.
   */
  publish(notice: RefusalNotice): void {
    const failed = (err: unknown) => {
      if (!isConnectionFailure(err)) this.fault("refusal-notice", "publishing a ledger refusal notice failed", err, { contextId: notice.contextId });
    };
    try {
      this.redis.publish(this.channel, `${notice.contextId} ${JSON.stringify(bounded(notice))}`).catch(failed);
    } catch (err) {
      failed(err);
    }
  }

  /** A message of the channel: parsed once, and only when this instance has subscribers of its context. */
  receive(message: string): void {
    const space = message.indexOf(" ");
    const subscribers = this.byContext.get(message.slice(0, space));
    if (!subscribers) return;
    let notice: LedgerRefusal;
    try {
      notice = { ...(JSON.parse(message.slice(space + 1)) as RefusalNotice), dropped: 0 };
    } catch (err) {
      this.fault("refusal-notice", "unreadable ledger refusal notice", err, { contextId: message.slice(0, space) });
      return;
    }
    for (const subscriber of subscribers) subscriber.push(notice, message.length);
  }

  /**
   * A subscriber to `contextId`'s notices from now on. Its last value is an AppError (UNAVAILABLE)
   * when the server shuts down, for the field's resolver to raise. UNAVAILABLE at once when the
   * server is shutting down already.
   */
  subscribe(contextId: string): AsyncIterableIterator<LedgerRefusal | AppError> {
    if (this.shuttingDown) throw shuttingDown();
    let set = this.byContext.get(contextId);
    if (!set) this.byContext.set(contextId, (set = new Set()));
    const queue: NoticeQueue = new NoticeQueue(() => {
      set.delete(queue);
      if (set.size === 0 && this.byContext.get(contextId) === set) this.byContext.delete(contextId);
    });
    set.add(queue);
    return queue;
  }

  /** Subscribers being served. */
  get subscriberCount(): number {
    let count = 0;
    for (const set of this.byContext.values()) count += set.size;
    return count;
  }

  /** Ends every subscriber with UNAVAILABLE (after what it has queued) and refuses new ones. */
  endSubscribers(): void {
    this.shuttingDown = true;
    for (const set of [...this.byContext.values()]) for (const queue of [...set]) queue.end(shuttingDown());
  }
}

function shuttingDown(): AppError {
  return new AppError(ErrorCode.UNAVAILABLE, "this server is shutting down; subscribe again (to another instance)", {});
}

/** One subscriber's bounded buffer of notices. */
class NoticeQueue implements AsyncIterableIterator<LedgerRefusal | AppError> {
  private readonly queue: { notice: LedgerRefusal; bytes: number }[] = [];
  private bytes = 0;
  private dropped = 0;
  private last: AppError | null = null;
  private closed = false;
  private detached = false;
  private waiting: ((result: IteratorResult<LedgerRefusal | AppError>) => void) | null = null;

  constructor(private readonly onClose: () => void) {}

  push(notice: LedgerRefusal, bytes: number): void {
    if (this.closed || this.last) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: this.taken(notice), done: false });
      return;
    }
    this.queue.push({ notice, bytes });
    this.bytes += bytes;
    while (this.queue.length > BUFFER_NOTICES || (this.bytes > BUFFER_BYTES && this.queue.length > 1)) {
      this.bytes -= this.queue.shift()!.bytes;
      this.dropped++;
    }
  }

  /** Delivers what is queued, then `error`, then ends. */
  end(error: AppError): void {
    if (this.closed || this.last) return;
    this.last = error;
    this.detach();
    if (this.waiting && this.queue.length === 0) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: error, done: false });
      this.last = null;
      this.closed = true;
    }
  }

  next(): Promise<IteratorResult<LedgerRefusal | AppError>> {
    const head = this.queue.shift();
    if (head) {
      this.bytes -= head.bytes;
      return Promise.resolve({ value: this.taken(head.notice), done: false });
    }
    if (this.last) {
      const value = this.last;
      this.last = null;
      this.closed = true;
      return Promise.resolve({ value, done: false });
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiting = resolve));
  }

  return(): Promise<IteratorResult<LedgerRefusal | AppError>> {
    this.queue.length = 0;
    this.last = null;
    this.closed = true;
    this.detach();
    this.waiting?.({ value: undefined, done: true });
    this.waiting = null;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The notice as this subscriber gets it: with the count it lost just before, if any (a copy then, else the shared object). */
  private taken(notice: LedgerRefusal): LedgerRefusal {
    if (this.dropped === 0) return notice;
    const value = { ...notice, dropped: this.dropped };
    this.dropped = 0;
    return value;
  }

  private detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.onClose();
  }
}
