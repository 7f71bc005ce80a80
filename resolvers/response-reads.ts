import { AppError, ErrorCode } from "../src/errors.js";
import type { LedgerStore } from "../src/store/ledger.js";
import type { Allocation } from "../src/model/allocation.js";

/** Allocations read from Redis per round trip while loading a context's ledger. */
const ALLOCATION_BATCH = 500;

const sizes = new WeakMap<object, number>();

/** A context's allocations as one response read them. */
interface Ledger {
  readonly all: readonly Allocation[];
  readonly byParent: ReadonlyMap<string, readonly Allocation[]>;
}

/**
 * The length of `value`'s JSON (UTF-16 code units, about its bytes for ASCII), computed once per
 * object: cached documents and allocations are the same objects across reads.
 */
export function jsonSize(value: unknown): number {
  if (typeof value !== "object" || value === null) return value === undefined ? 0 : JSON.stringify(value).length;
  let size = sizes.get(value);
  if (size === undefined) sizes.set(value, (size = JSON.stringify(value).length));
  return size;
}

/**
 * What one response reads: a query's or a mutation's result, or one subscription event. Counts
 * the bytes of stored data its fields read and return (documents, values, snapshots, feed entries,
 * allocations, locks) against `maxBytes` (SWARM_MAX_RESPONSE_BYTES), and reads a context's
 * allocations once however many fields of the response ask for them. Reads of unknown size
 * (documents not cached, snapshots, feed entries, ledgers) run one at a time, each once the one
 * before was counted: fields that run at once (aliases, list items) cannot each read up to the
 * bound before any of them is counted, so a response holds at most the bound and one read more.
 */
export class ResponseReads {
  private bytes = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly ledgers = new Map<string, Promise<Ledger>>();

  constructor(private readonly maxBytes: number) {}

  /** Bytes the response may still carry. */
  get remaining(): number {
    return Math.max(0, this.maxBytes - this.bytes);
  }

  /**
   * Counts `bytes` more of `what` (a plural noun, for the message). Throws LIMIT_EXCEEDED with
   * `limit: "responseBytes"` and `max` once the response would carry more than maxBytes.
   */
  charge(bytes: number, what: string): void {
    this.bytes += bytes;
    if (this.bytes <= this.maxBytes) return;
    throw new AppError(
      ErrorCode.LIMIT_EXCEEDED,
      `this response would carry more than ${this.maxBytes} bytes (SWARM_MAX_RESPONSE_BYTES) with its ${what}; ask for less, or page`,
      { limit: "responseBytes", max: this.maxBytes },
    );
  }

  /**
   * Runs `read` after every read queued before it has ended (and been counted), and returns its
   * result; a read that fails does not stop the ones after it.
   */
  serially<T>(read: () => Promise<T>): Promise<T> {
    const turn = this.queue.then(read);
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** Counts the JSON of each of `values` (see charge), and returns them. */
  chargeEach<T>(values: readonly T[], what: string): readonly T[] {
    let bytes = 0;
    for (const value of values) bytes += jsonSize(value);
    this.charge(bytes, what);
    return values;
  }

  /**
   * Every allocation of a context, oldest first, read once per response: what they weigh is
   * charged as they are read, so reading stops at the bound rather than after loading them all.
   */
  async allocations(ledger: LedgerStore, contextId: string): Promise<readonly Allocation[]> {
    return (await this.ledger(ledger, contextId)).all;
  }

  /** Every allocation made under `parent` (active or ended), oldest first; read as `allocations`. */
  async children(ledger: LedgerStore, parent: Allocation): Promise<readonly Allocation[]> {
    return (await this.ledger(ledger, parent.contextId)).byParent.get(parent.id) ?? [];
  }

  private ledger(ledger: LedgerStore, contextId: string): Promise<Ledger> {
    let loading = this.ledgers.get(contextId);
    if (!loading) {
      loading = this.serially(async () => {
        const all: Allocation[] = [];
        for await (const batch of ledger.allocationBatches(contextId, ALLOCATION_BATCH)) {
          this.chargeEach(batch, "allocations");
          all.push(...batch);
        }
        const byParent = new Map<string, Allocation[]>();
        for (const a of all) {
          if (a.parentId === null) continue;
          const siblings = byParent.get(a.parentId);
          if (siblings) siblings.push(a);
          else byParent.set(a.parentId, [a]);
        }
        return { all, byParent };
      });
      this.ledgers.set(contextId, loading);
    }
    return loading;
  }

  /** Forgets the allocations read so far: a mutation that runs next may change them. */
  forgetAllocations(): void {
    this.ledgers.clear();
  }
}
