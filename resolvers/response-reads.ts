import DataLoader from "dataloader";
import { AppError, ErrorCode } from "../src/errors.js";
import type { LedgerStore, Page, PageRequest } from "../src/store/ledger.js";
import type { Allocation } from "../src/model/allocation.js";

const sizes = new WeakMap<object, number>();

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
 * allocations, locks) against `maxBytes` (SWARM_MAX_RESPONSE_BYTES), and batches the ledger's
 * reads: the pages, counts and parents that the fields of a response ask for while it resolves a
 * level (the nodes of a page, say) go to Redis together (a DataLoader each, per response), and a
 * page asked for twice is read once. Reads of unknown size (documents not cached, snapshots, feed
 * entries, batches of allocation pages) run one at a time, each once the one before was counted:
 * fields that run at once (aliases, list items) cannot each read up to the bound before any of
 * them is counted, so a response holds at most the bound and one read more (a batch of pages is
 * bounded by the query cost limit, which charges each page its `first`).
 */
export class ResponseReads {
  private bytes = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private loaders: Loaders | null = null;
  /** Pages and allocations counted when read and not yet delivered (see deliver). */
  private readonly countedOnRead = new WeakSet<object>();

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
   * A page of allocations (LedgerStore.allocationPages), batched with the others of its level.
   * With `deliver` (the page's rows go into the response), a page read before (the same request
   * elsewhere in the response) is counted again: the response carries it again.
   */
  async page(ledger: LedgerStore, request: PageRequest, deliver: boolean): Promise<Page> {
    const page = await this.loadersOf(ledger).pages.load(request);
    if (deliver) this.deliver(page, page.allocations);
    return page;
  }

  /** How many allocations a page request's index holds (LedgerStore.allocationCounts), batched. */
  count(ledger: LedgerStore, request: Omit<PageRequest, "after" | "first">): Promise<number> {
    return this.loadersOf(ledger).counts.load(request);
  }

  /** An allocation by id or null, batched with the others of its level and counted. */
  async allocation(ledger: LedgerStore, id: string): Promise<Allocation | null> {
    const found = await this.loadersOf(ledger).allocations.load(id);
    if (found) this.deliver(found, [found]);
    return found;
  }

  /**
   * Counts `values`, which `read` stands for, unless this is the first delivery of what a batch
   * read and counted already: a row is counted once per place in the response that carries it.
   */
  private deliver(read: object, values: readonly unknown[]): void {
    if (this.countedOnRead.has(read)) this.countedOnRead.delete(read);
    else this.chargeEach(values, "allocations");
  }

  private loadersOf(ledger: LedgerStore): Loaders {
    if (this.loaders && this.loaders.ledger === ledger) return this.loaders;
    const key = (r: object) => JSON.stringify(r, Object.keys(r).sort());
    return (this.loaders = {
      ledger,
      pages: new DataLoader(
        (requests: readonly PageRequest[]) =>
          this.serially(async () => {
            const pages = await ledger.allocationPages(requests);
            this.chargeEach(pages.flatMap((p) => p.allocations), "allocations");
            for (const p of pages) this.countedOnRead.add(p);
            return pages;
          }),
        { cacheKeyFn: key },
      ),
      counts: new DataLoader((requests: readonly Omit<PageRequest, "after" | "first">[]) => ledger.allocationCounts(requests), { cacheKeyFn: key }),
      allocations: new DataLoader((ids: readonly string[]) =>
        this.serially(async () => {
          const found = await ledger.allocationsById(ids);
          this.chargeEach(found, "allocations");
          for (const a of found) if (a) this.countedOnRead.add(a);
          return found;
        }),
      ),
    });
  }

  /** Forgets the allocations read so far: a mutation that runs next may change them. */
  forgetAllocations(): void {
    this.loaders = null;
  }
}

/** The ledger's batched reads of one response (one DataLoader each, so each caches per response). */
interface Loaders {
  readonly ledger: LedgerStore;
  readonly pages: DataLoader<PageRequest, Page, string>;
  readonly counts: DataLoader<Omit<PageRequest, "after" | "first">, number, string>;
  readonly allocations: DataLoader<string, Allocation | null>;
}
