import { isConnectionFailure } from "../redis/clients.js";
import { matchesChange, wantsContext, type ChangeFilter } from "./change-filter.js";
import { UnreadableEntryError, versionBefore, type FeedEntry, type FeedRead, type FeedReader } from "../store/feed-reader.js";
import { type ChangeEntry } from "../model/change.js";
import { SubscriberQueue, type QueueOwner } from "./subscriber-queue.js";

/** A position in one context's feed: the last seq seen. */
export interface Cursor {
  readonly contextId: string;
  readonly seq: number;
}

/**
 * Changes of a context that will not be delivered: the subscriber should re-read the context
 * (it was at `version` as of `seq`) and treat `seq` as its cursor for that context.
 */
export interface ResyncEntry {
  readonly contextId: string;
  readonly seq: number;
  readonly version: number;
}

/**
 * Why a subscriber was ended: it fell too far behind; an entry of its feed could not be read
 * (`unreadable`: it gets a resync past it); reading its feed failed otherwise (`failed`); or the
 * server is shutting down.
 */
export type EndReason = "behind" | "unreadable" | "failed" | "shutdown";

/** What a feed subscriber receives, in order. */
export interface ChangeBatch {
  readonly changes: readonly ChangeEntry[];
  readonly resync: readonly ResyncEntry[];
  /** Bytes of its changes as stored (FeedEntry.bytes), for the subscriber bound. */
  readonly bytes: number;
  /** Only on the last value of an ended subscriber: why, and the cursors to resume from. */
  readonly ended?: { readonly after: readonly Cursor[]; readonly reason: EndReason };
}

export interface FeedOptions {
  readonly filter: ChangeFilter;
  /** Cursors to replay from; contexts without one start at their current seq. */
  readonly after: readonly Cursor[];
  /** Changes per batch, at most. */
  readonly maxSize: number;
  /** How long the first change of a batch may wait for more, in ms. */
  readonly maxWaitMs: number;
  /** Batches per second, at most (null: no limit). */
  readonly maxBatchesPerSecond: number | null;
}

/** What one subscriber may hold before it is ended with a resync (see ChangePipeline). */
export interface SubscriberLimits {
  /** Changes waiting for it, queued or pending. */
  readonly changes: number;
  /** Bytes of changes (FeedEntry.bytes) waiting for it, queued or pending, or being written to it. */
  readonly bytes: number;
  /** How long it may take nothing while more than its bound waits for it, in ms. */
  readonly stallMs: number;
  /** About the largest a feed entry can be (largestEntryBytes): bounds what one read holds. */
  readonly largestEntryBytes: number;
}

/** What every pipeline of a hub shares. */
export interface PipelineSettings {
  readonly reader: FeedReader;
  readonly limits: SubscriberLimits;
  /** Hears, per batch emitted, the ms from each change's commit to now. */
  readonly observeLag: (ms: number) => void;
  /**
   * Hears a read of `contextId` that failed other than by a lost connection (an
   * UnreadableEntryError, say), once per pipeline that met it; the pipeline ends its members.
   */
  readonly readFailed: (contextId: string, err: unknown) => void;
}

interface ContextCursor {
  /** The last seq taken into the pipeline (matching or not). */
  seq: number;
  /** A read from the stream is running for this context. */
  filling: boolean;
  /** Changes arrived while filling: read again when done. */
  refill: boolean;
  /** The highest seq the hub has offered; beyond `seq` while filling, those changes wait in the stream. */
  offered: number;
}

const cursorAt = (seq: number): ContextCursor => ({ seq, filling: false, refill: false, offered: 0 });

interface Pending {
  readonly entry: FeedEntry;
  /** performance.now() when it was taken in. */
  readonly at: number;
}

/** Entries per stream read when replaying or filling a gap. */
const FILL_CHUNK = 500;
/** Pause before retrying a stream read that failed because Redis was unreachable, in ms. */
const RETRY_MS = 250;

const batchWeight = (batch: ChangeBatch) => Math.max(1, batch.changes.length + batch.resync.length);
const batchBytes = (batch: ChangeBatch) => batch.bytes;

/**
 * The change feed of one set of FeedOptions: per context a cursor into the stream, the filter,
 * batching and rate limiting, and the batches it emits to every member. Members with the same
 * options share one pipeline, so each batch is filtered, formed (and, upstream, executed and
 * serialized) once for all of them.
 *
 * Gap-free delivery: every change reaches a context's cursor in seq order, from the hub's shared
 * reads or, when one is missing (a lost wake-up, a replay, a reconnect), from the pipeline's own
 * read of the stream. Memory: the bound (SubscriberLimits) is in changes and in bytes, whichever
 * is reached first. Replays read only while the backlog is under half the bound, and only what
 * fits under it; live changes that push the pending backlog, or what one member holds (queued,
 * and being written to it), past the bound end those members with a resync and the cursors to
 * resume from, as does taking nothing for `stallMs` while more than the bound waits in the stream
 * (endLaggards). A single batch is never too much, however large.
 *
 * Faults: a read that fails because Redis is unreachable is retried (the stream still holds
 * everything). An entry that cannot be parsed ends every member with a resync past it (to the
 * context's head); any other failed read ends them with the cursors to resume from. Either way
 * `readFailed` hears it, and the members are never left waiting on a read that cannot succeed.
 */
export class ChangePipeline implements QueueOwner<ChangeBatch> {
  private readonly cursors = new Map<string, ContextCursor>();
  private readonly pending: Pending[] = [];
  private pendingBytes = 0;
  /** Entries taken in, and their bytes: their mean estimates the size of those still in the stream. */
  private takenCount = 0;
  private takenBytes = 0;
  private resync: ResyncEntry[] = [];
  private readonly members = new Set<SubscriberQueue<ChangeBatch>>();
  /** Contexts that had changes offered before start() set the cursors. */
  private readonly early = new Set<string>();
  private started = false;
  private closed = false;
  private lastEmitAt = -Infinity;
  private readonly minIntervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  /** When the timer is set to fire (performance.now() time). */
  private timerAt = 0;
  private roomWaiters: (() => void)[] = [];
  /** Resolves once every cursor is set (rejects if Redis could not be read). */
  readonly ready: Promise<void>;

  private readonly reader: FeedReader;
  private readonly limits: SubscriberLimits;

  constructor(
    readonly options: FeedOptions,
    private readonly settings: PipelineSettings,
    /** Called once when the last member leaves or the pipeline ends. */
    private readonly onClose: (pipeline: ChangePipeline) => void,
  ) {
    this.reader = settings.reader;
    this.limits = settings.limits;
    this.minIntervalMs = options.maxBatchesPerSecond ? 1000 / options.maxBatchesPerSecond : 0;
    this.ready = this.start();
    this.ready.catch(() => this.close());
  }

  /** Whether changes of this context can match. */
  wants(contextId: string): boolean {
    return wantsContext(this.options.filter, contextId);
  }

  /** Subscribers being served. */
  get memberCount(): number {
    return this.members.size;
  }

  /** Whether this pipeline has not ended. */
  get isOpen(): boolean {
    return !this.closed;
  }

  /** A new member, receiving every batch emitted from now on. */
  join(): SubscriberQueue<ChangeBatch> {
    const member = new SubscriberQueue<ChangeBatch>(batchWeight, batchBytes, this);
    this.members.add(member);
    return member;
  }

  /** A member went away or was ended (QueueOwner). */
  queueClosed(member: SubscriberQueue<ChangeBatch>): void {
    this.leave(member);
  }

  /** A member took a batch: room appeared (QueueOwner). */
  queueTaken(): void {
    this.wakeRoomWaiters();
  }

  /** Changes of `contextId` read by the hub, oldest first, consecutive. */
  offer(contextId: string, entries: readonly FeedEntry[]): void {
    if (this.closed || !this.wants(contextId)) return;
    if (!this.started) {
      this.early.add(contextId);
      return;
    }
    const cursor = this.cursorOf(contextId);
    cursor.offered = Math.max(cursor.offered, entries[entries.length - 1]?.seq ?? 0);
    if (cursor.filling) {
      cursor.refill = true;
      this.endLaggards();
      return;
    }
    for (const entry of entries) {
      if (entry.seq <= cursor.seq) continue;
      if (entry.seq !== cursor.seq + 1) {
        void this.fill(contextId);
        break;
      }
      this.take(cursor, entry);
    }
    this.afterTaking();
  }

  /** The hub could not read the new entries of `contextId`: reads them from the stream itself. */
  refill(contextId: string): void {
    if (this.closed || !this.wants(contextId)) return;
    if (!this.started) {
      this.early.add(contextId);
      return;
    }
    void this.fill(contextId);
  }

  /** After the wake-up connection was lost: reads whatever every cursor missed, and new contexts of a prefix. */
  async catchUp(): Promise<void> {
    if (!this.started || this.closed) return;
    for (const contextId of this.cursors.keys()) void this.fill(contextId);
    if (this.options.filter.contextIds === null) {
      // Ids indexed since start() had no change before it: all their changes are new to us.
      for (const id of await this.reader.idsWithPrefix(this.options.filter.idPrefix ?? "")) {
        if (!this.cursors.has(id) && this.wants(id)) void this.fill(id);
      }
    }
  }

  private async start(): Promise<void> {
    const { filter, after } = this.options;
    const ids = (filter.contextIds ?? (await this.reader.idsWithPrefix(filter.idPrefix ?? ""))).filter((id) => this.wants(id));
    const resumed = after.filter((c) => this.wants(c.contextId));
    const all = [...new Set([...ids, ...resumed.map((c) => c.contextId)])];
    const seqs = await this.reader.seqs(all);
    const seqOf = new Map(all.map((id, i) => [id, seqs[i]!]));
    for (const id of ids) this.cursors.set(id, cursorAt(seqOf.get(id)!));
    for (const { contextId, seq } of resumed) {
      if (seq > seqOf.get(contextId)!) {
        // A cursor past the end (state lost, or a cursor of something else): never skip silently.
        const head = await this.reader.head(contextId);
        this.resync.push({ contextId, seq: head.seq, version: head.version });
        this.cursors.set(contextId, cursorAt(head.seq));
      } else {
        this.cursors.set(contextId, cursorAt(seq));
        this.early.add(contextId);
      }
    }
    this.started = true;
    for (const contextId of this.early) void this.fill(contextId);
    this.early.clear();
    this.schedule();
  }

  /** A cursor for a context not known at start: it had no change before start, so it begins at 0. */
  private cursorOf(contextId: string): ContextCursor {
    let cursor = this.cursors.get(contextId);
    if (!cursor) {
      cursor = cursorAt(0);
      this.cursors.set(contextId, cursor);
    }
    return cursor;
  }

  /** Reads the stream after the context's cursor until it has caught up, pacing itself to the backlog. Never rejects. */
  private async fill(contextId: string): Promise<void> {
    const cursor = this.cursorOf(contextId);
    if (cursor.filling) {
      cursor.refill = true;
      return;
    }
    cursor.filling = true;
    try {
      for (;;) {
        cursor.refill = false;
        await this.room();
        if (this.closed) return;
        // At most what fits under the bound, so that a replay never ends its own subscriber.
        const count = Math.min(FILL_CHUNK, this.limits.changes - this.backlog());
        let read: FeedRead | UnreadableEntryError;
        try {
          read = await this.reader.read(contextId, cursor.seq, count, this.limits.bytes - this.backlogBytes()).catch((err: unknown) => {
            if (err instanceof UnreadableEntryError) return err;
            throw err;
          });
          if (read instanceof UnreadableEntryError || read.trimmedTo !== null) {
            // What cannot be delivered is skipped with a resync: the subscriber re-reads the context.
            const head = await this.reader.head(contextId);
            this.resync.push({ contextId, seq: head.seq, version: head.version });
            cursor.seq = head.seq;
            cursor.refill = true;
          }
        } catch (err) {
          if (isConnectionFailure(err)) {
            // Nothing is lost, the stream still holds it: try again shortly.
            await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
            cursor.refill = true;
            continue;
          }
          this.fail(contextId, err, "failed");
          return;
        }
        if (this.closed) return;
        if (read instanceof UnreadableEntryError) {
          this.fail(contextId, read, "unreadable");
          return;
        }
        if (read.trimmedTo === null) for (const entry of read.entries) if (entry.seq > cursor.seq) this.take(cursor, entry);
        this.afterTaking();
        if (read.entries.length < count && !cursor.refill) return;
      }
    } finally {
      cursor.filling = false;
    }
  }

  /** After a read of `contextId` failed other than by a lost connection: says so, and ends every member. */
  private fail(contextId: string, err: unknown, reason: EndReason): void {
    this.settings.readFailed(contextId, err);
    for (const member of this.members) this.endMember(member, reason);
  }

  private take(cursor: ContextCursor, entry: FeedEntry): void {
    cursor.seq = entry.seq;
    this.takenCount++;
    this.takenBytes += entry.bytes;
    if (!matchesChange(this.options.filter, entry)) return;
    this.pending.push({ entry, at: performance.now() });
    this.pendingBytes += entry.bytes;
  }

  private afterTaking(): void {
    if (this.pending.length > this.limits.changes || (this.pendingBytes > this.limits.bytes && this.pending.length > 1)) {
      for (const member of this.members) this.endMember(member, "behind");
      return;
    }
    this.schedule();
  }

  /** Emits now if a batch is due and the rate allows, else sets a timer for when it will be. */
  private schedule(): void {
    if (this.closed || !this.started) return;
    if (this.pending.length === 0 && this.resync.length === 0) return;
    const now = performance.now();
    const full = this.resync.length > 0 || this.pending.length >= this.options.maxSize;
    const due = full ? now : this.pending[0]!.at + this.options.maxWaitMs;
    const at = Math.max(due, this.lastEmitAt + this.minIntervalMs);
    // A batch that filled up since the timer was set is due sooner than the timer says.
    if (this.timer) {
      if (at >= this.timerAt) return;
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (at <= now) {
      this.emit(now);
    } else {
      this.timerAt = at;
      this.timer = setTimeout(() => {
        this.timer = null;
        this.schedule();
      }, Math.ceil(at - now));
    }
  }

  private emit(now: number): void {
    const changes = this.pending.splice(0, this.options.maxSize).map((p) => p.entry);
    let bytes = 0;
    for (const change of changes) bytes += change.bytes;
    this.pendingBytes -= bytes;
    const batch: ChangeBatch = { changes, resync: this.resync, bytes };
    this.resync = [];
    this.lastEmitAt = now;
    const wall = Date.now();
    for (const change of batch.changes) this.settings.observeLag(wall - Date.parse(change.at));
    for (const member of this.members) {
      member.push(batch);
      if (member.queuedWeight > this.limits.changes || this.overBytes(member, 0)) this.endMember(member, "behind");
    }
    this.wakeRoomWaiters();
    this.schedule();
  }

  /**
   * Ends a member, dropping what it had waiting. It gets one batch of resync entries, then the
   * end marker with a cursor for every context to resume from with `after`: the seq before its
   * first undelivered change there, or where an undelivered resync left it. A member that fell
   * `behind` gets a resync entry for every context it missed changes of; for any other reason
   * only the undelivered resync entries, since resuming replays the changes.
   */
  private endMember(member: SubscriberQueue<ChangeBatch>, reason: EndReason): void {
    const resume = new Map<string, ResyncEntry>();
    for (const r of [...member.undelivered.flatMap((b) => b.resync), ...this.resync]) {
      if (!resume.has(r.contextId)) resume.set(r.contextId, r);
    }
    const jumps = [...resume.values()];
    for (const c of [...member.undelivered.flatMap((b) => b.changes), ...this.pending.map((p) => p.entry)]) {
      if (!resume.has(c.contextId)) resume.set(c.contextId, { contextId: c.contextId, seq: c.seq - 1, version: versionBefore(c) });
    }
    const after = [...this.cursors].map(([contextId, cursor]) => ({ contextId, seq: resume.get(contextId)?.seq ?? cursor.seq }));
    const resync = reason === "behind" ? [...resume.values()] : jumps;
    member.end([...(resync.length > 0 ? [{ changes: [], resync, bytes: 0 }] : []), { changes: [], resync: [], bytes: 0, ended: { after, reason } }]);
  }

  /** Ends every member with the cursors to resume from (elsewhere), and the pipeline with them. */
  shutdown(): void {
    for (const member of this.members) this.endMember(member, "shutdown");
  }

  /**
   * While a read waits for room, live changes stay in the stream; they count as pending for a
   * member that has stopped taking: one that has taken nothing for `stallMs` while its queue and
   * those pass the bound is ended (the others go on). Their bytes are estimated from the mean
   * size of the entries taken so far. A member that keeps taking is never ended here, however far
   * behind it replays: it catches up, or meets a resync where retention ends.
   */
  private endLaggards(): void {
    let inStream = 0;
    for (const cursor of this.cursors.values()) if (cursor.filling) inStream += Math.max(0, cursor.offered - cursor.seq);
    const waiting = this.pending.length + inStream;
    const waitingBytes = this.pendingBytes + (this.takenCount > 0 ? (inStream * this.takenBytes) / this.takenCount : 0);
    const now = performance.now();
    for (const member of this.members) {
      const stalled = member.queuedWeight > 0 && now - member.lastTakeAt >= this.limits.stallMs;
      if (stalled && (member.queuedWeight + waiting > this.limits.changes || this.overBytes(member, waitingBytes))) this.endMember(member, "behind");
    }
  }

  /** Whether `member`, were it to take `more` bytes in as well, would hold more than the byte bound (and more than one batch). */
  private overBytes(member: SubscriberQueue<ChangeBatch>, more: number): boolean {
    return member.heldBytes + more > this.limits.bytes && (member.holdsMoreThanOne || more > 0);
  }

  private leave(member: SubscriberQueue<ChangeBatch>): void {
    this.members.delete(member);
    if (this.members.size === 0) this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.wakeRoomWaiters();
    this.onClose(this);
  }

  /** Resolves when the backlog (pending plus the fullest member) is under half the bound, in changes and in bytes. */
  private async room(): Promise<void> {
    while (!this.closed && (this.backlog() >= this.limits.changes / 2 || this.backlogBytes() >= this.limits.bytes / 2)) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
  }

  private backlog(): number {
    let fullest = 0;
    for (const member of this.members) fullest = Math.max(fullest, member.queuedWeight);
    return this.pending.length + fullest;
  }

  private backlogBytes(): number {
    let fullest = 0;
    for (const member of this.members) fullest = Math.max(fullest, member.heldBytes);
    return this.pendingBytes + fullest;
  }

  private wakeRoomWaiters(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const wake of waiters) wake();
  }
}
