import { AppError, ErrorCode } from "../errors.js";
import type { ReportFault } from "../observability/faults.js";
import { isConnectionFailure, type RedisClient, type RedisTarget } from "../redis/clients.js";
import { Subscriber } from "../redis/subscriber.js";
import type { Keys } from "../redis/keys.js";
import { ChangePipeline, type ChangeBatch, type FeedOptions, type PipelineSettings, type SubscriberLimits } from "./change-pipeline.js";
import { entryFromWakeUp, FeedReader, UnreadableEntryError, type FeedEntry } from "../store/feed-reader.js";
import { RefusalNotices } from "./refusal-notices.js";
import type { SubscriberQueue } from "./subscriber-queue.js";

/** A context whose new entries the hub is reading: up to `target`, from after `seq`. */
interface Tail {
  seq: number;
  target: number;
}

/** Entries per shared read of one context. */
const READ_CHUNK = 1000;

/**
 * The change feed of one server instance. One Redis subscription (the changes channel, see
 * redis/subscriber.ts; on a Redis Cluster, on any one node) wakes it with
 * `<contextId> <seq> <entry>`, or `<contextId> <seq>` for an entry too large to carry
 * (WAKE_UP_ENTRY_BYTES). An entry carried is offered to every pipeline that wants the context as
 * it is: a pipeline whose cursor there is at seq - 1 takes it without reading the stream. Else
 * the hub reads the new entries of that context once and offers them. The stream is the truth: a
 * pipeline offered an entry past a gap (a wake-up lost, or its cursor behind) reads the gap from
 * the stream itself, so a wake-up that never arrives costs latency, not changes, and once the
 * subscription is back after a lost connection (or a lost node) every pipeline re-reads its cursors.
 * Faults other than a lost connection are reported (ReportFault), and the subscribers they
 * affect are ended with a resumable error (see ChangePipeline): never left waiting. The same
 * connection carries the live ledger refusal notices (`refusals`, a second channel).
 */
export class FeedHub {
  /** Live notices of refused ledger operations (ledgerRefusals): published and fanned out here. */
  readonly refusals: RefusalNotices;
  private readonly byContext = new Map<string, Set<ChangePipeline>>();
  /** Pipelines without contextIds (an idPrefix, or every context). */
  private readonly scanning = new Set<ChangePipeline>();
  /** Pipelines that subscribers with the same options (and no `after`) share. */
  private readonly shared = new Map<string, ChangePipeline>();
  private readonly tails = new Map<string, Tail>();
  private readonly reader: FeedReader;
  private readonly settings: PipelineSettings;
  /** Per context, the seq of the unreadable entry reported last: each is reported once, not per pipeline. */
  private readonly unreadableReported = new Map<string, number>();
  private shuttingDown = false;
  private subscriber: Subscriber | undefined;

  private constructor(
    redis: RedisClient,
    keys: Keys,
    private readonly limits: SubscriberLimits,
    observeLag: (ms: number) => void,
    private readonly fault: ReportFault,
  ) {
    this.reader = new FeedReader(redis, keys, limits.largestEntryBytes);
    this.settings = { reader: this.reader, limits, observeLag, readFailed: (contextId, err) => this.readFailed(contextId, err) };
    this.refusals = new RefusalNotices(redis, keys.refusalsChannel, fault);
  }

  /**
   * Opens the wake-up connection to `target` and subscribes to the changes and refusals channels;
   * `redis` is the command connection used for reads (and, on a cluster, to find its nodes).
   * `limits` bound each subscriber (see ChangePipeline); `observeLag` hears the ms from commit to
   * hand-over of every change each pipeline emits; `fault` hears faults other than a lost
   * connection. Rejects if Redis is unreachable.
   */
  static async open(
    target: RedisTarget,
    redis: RedisClient,
    keys: Keys,
    limits: SubscriberLimits,
    observeLag: (ms: number) => void,
    fault: ReportFault,
  ): Promise<FeedHub> {
    const hub = new FeedHub(redis, keys, limits, observeLag, fault);
    hub.subscriber = await Subscriber.open(
      target,
      redis,
      "swarm-context-feed",
      [keys.changesChannel, keys.refusalsChannel],
      (channel, message) => {
        // Refusal notices are best effort: those sent while the subscription is lost are gone
        // (there is no record of them to read).
        if (channel === keys.refusalsChannel) hub.refusals.receive(message);
        else hub.wake(message);
      },
      () => hub.catchUp(),
    );
    return hub;
  }

  /** A subscriber to the changes that `options` select; rejects if Redis cannot be read, UNAVAILABLE once shutting down. */
  async subscribe(options: FeedOptions): Promise<SubscriberQueue<ChangeBatch>> {
    if (this.shuttingDown) {
      throw new AppError(ErrorCode.UNAVAILABLE, "this server is shutting down; subscribe on another instance", {});
    }
    const key = options.after.length === 0 ? JSON.stringify(options) : null;
    let pipeline = key === null ? undefined : this.shared.get(key);
    if (!pipeline?.isOpen) {
      pipeline = new ChangePipeline(options, this.settings, (closed) => this.detach(closed, key));
      this.attach(pipeline, key);
    }
    const member = pipeline.join();
    try {
      await pipeline.ready;
    } catch (err) {
      await member.return();
      throw err;
    }
    return member;
  }

  /** Subscribers being served, of every pipeline, and of the refusal notices. */
  get subscriberCount(): number {
    let count = this.refusals.subscriberCount;
    for (const pipeline of this.allPipelines()) count += pipeline.memberCount;
    return count;
  }

  /**
   * Ends every subscriber with the cursors to resume from (see ChangePipeline.shutdown), and
   * every refusal notice subscriber, and refuses new ones: the first step of shutting down.
   */
  endSubscribers(): void {
    this.shuttingDown = true;
    for (const pipeline of this.allPipelines()) pipeline.shutdown();
    this.refusals.endSubscribers();
  }

  /** Closes the wake-up connection: politely when `gracefully` and Redis answers within `waitMs`, else drops it. */
  async close(gracefully: boolean, waitMs: number): Promise<void> {
    await this.subscriber?.close(gracefully, waitMs);
  }

  private attach(pipeline: ChangePipeline, key: string | null): void {
    if (key !== null) this.shared.set(key, pipeline);
    const ids = pipeline.options.filter.contextIds;
    if (ids === null) {
      this.scanning.add(pipeline);
      return;
    }
    for (const id of ids) {
      let set = this.byContext.get(id);
      if (!set) this.byContext.set(id, (set = new Set()));
      set.add(pipeline);
    }
  }

  private detach(pipeline: ChangePipeline, key: string | null): void {
    if (key !== null && this.shared.get(key) === pipeline) this.shared.delete(key);
    this.scanning.delete(pipeline);
    for (const id of pipeline.options.filter.contextIds ?? []) {
      const set = this.byContext.get(id);
      set?.delete(pipeline);
      if (set?.size === 0) this.byContext.delete(id);
    }
  }

  private pipelinesFor(contextId: string): ChangePipeline[] {
    const found = [...(this.byContext.get(contextId) ?? [])];
    for (const pipeline of this.scanning) if (pipeline.wants(contextId)) found.push(pipeline);
    return found;
  }

  private wake(message: string): void {
    // Context ids hold no space (CONTEXT_ID); the entry, if any, is all that follows the seq.
    const first = message.indexOf(" ");
    const second = message.indexOf(" ", first + 1);
    const contextId = message.slice(0, first);
    const seq = Number(second < 0 ? message.slice(first + 1) : message.slice(first + 1, second));
    const pipelines = this.pipelinesFor(contextId);
    if (pipelines.length === 0) return;
    const tail = this.tails.get(contextId);
    if (tail) {
      // A read of this context is under way: it reads this entry too, keeping the order.
      tail.target = Math.max(tail.target, seq);
      return;
    }
    let entry: FeedEntry | undefined;
    if (second >= 0) {
      try {
        entry = entryFromWakeUp(contextId, seq, message.slice(second + 1));
      } catch {
        // Read from the stream instead, where an entry that is unreadable there too is dealt with.
      }
    }
    if (entry) {
      for (const pipeline of pipelines) pipeline.offer(contextId, [entry]);
      return;
    }
    // Reading from just before this seq: anything earlier that a pipeline lacks, it reads itself.
    const fresh = { seq: seq - 1, target: seq };
    this.tails.set(contextId, fresh);
    void this.pump(contextId, fresh);
  }

  /** Reads a context's new entries once and offers them to every pipeline that wants them. */
  private async pump(contextId: string, tail: Tail): Promise<void> {
    try {
      while (tail.seq < tail.target) {
        // No more than one subscriber may hold: more would end every one of them anyway.
        const { entries } = await this.reader.read(contextId, tail.seq, READ_CHUNK, this.limits.bytes);
        if (entries.length === 0) break;
        tail.seq = entries[entries.length - 1]!.seq;
        for (const pipeline of this.pipelinesFor(contextId)) pipeline.offer(contextId, entries);
      }
    } catch (err) {
      // The pipelines read the stream themselves: retrying while Redis is unreachable, and
      // meeting (and reporting) an unreadable entry or a lasting fault there.
      if (!isConnectionFailure(err) && !(err instanceof UnreadableEntryError)) {
        this.fault("feed-read", "feed read failed; its subscribers read the feed themselves", err, { contextId });
      }
      for (const pipeline of this.pipelinesFor(contextId)) pipeline.refill(contextId);
    } finally {
      this.tails.delete(contextId);
    }
  }

  /** After the wake-up subscription was lost and is confirmed again: every pipeline reads what it missed from the streams. */
  private catchUp(): void {
    for (const pipeline of this.allPipelines()) {
      pipeline.catchUp().catch((err: unknown) => {
        // Redis unreachable: each cursor's read retries on its own, and a context new to a
        // prefix is found at its next wake-up.
        if (!isConnectionFailure(err)) this.fault("feed-read", "catching up after the wake-up connection came back failed", err);
      });
    }
  }

  /** A pipeline's read failed other than by a lost connection; it ends its subscribers. */
  private readFailed(contextId: string, err: unknown): void {
    if (!(err instanceof UnreadableEntryError)) {
      this.fault("feed-read", "feed read failed; its subscribers are ended with UNAVAILABLE and their cursors", err, { contextId });
    } else if (this.unreadableReported.get(contextId) !== err.seq) {
      this.unreadableReported.set(contextId, err.seq);
      this.fault("feed-entry", "unreadable feed entry; its subscribers get a resync past it", err, { contextId, seq: err.seq });
    }
  }

  private allPipelines(): Set<ChangePipeline> {
    return new Set([...this.scanning, ...[...this.byContext.values()].flatMap((set) => [...set])]);
  }
}
