/**
 * One subscriber's end of a shared stream: the values it has not taken yet, in order, counted by
 * weight (changes, for feed batches) so the producer can tell when it falls too far behind.
 * Iterating it yields them; return() (the client went away) detaches it.
 */
export class SubscriberQueue<T> implements AsyncIterableIterator<T> {
  private readonly queue: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | null = null;
  private closed = false;
  /** Sum of the weights of the values not taken yet. */
  queuedWeight = 0;
  /** performance.now() when the subscriber last asked for a value. */
  lastTakeAt = performance.now();

  constructor(
    private readonly weigh: (value: T) => number,
    /** Called once when the subscriber goes away or is ended. */
    private readonly onClose: () => void,
    /** Called whenever the subscriber takes a value (room appeared). */
    private readonly onTake: () => void,
  ) {}

  /** The values not taken yet, oldest first (the producer reads them to say what was missed). */
  get undelivered(): readonly T[] {
    return this.queue;
  }

  push(value: T): void {
    if (this.closed) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value, done: false });
    } else {
      this.queue.push(value);
      this.queuedWeight += this.weigh(value);
    }
  }

  /** Drops what is queued, queues `last` as the final values, and ends the stream after them. */
  end(last: readonly T[]): void {
    if (this.closed) return;
    this.queue.length = 0;
    this.queuedWeight = 0;
    for (const value of last) this.push(value);
    this.closed = true;
    this.onClose();
    if (this.waiting && this.queue.length === 0) {
      this.waiting({ value: undefined, done: true });
      this.waiting = null;
    }
  }

  next(): Promise<IteratorResult<T>> {
    this.lastTakeAt = performance.now();
    const value = this.queue.shift();
    if (value !== undefined) {
      this.queuedWeight -= this.weigh(value);
      this.onTake();
      return Promise.resolve({ value, done: false });
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.onTake();
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.queue.length = 0;
    this.queuedWeight = 0;
    if (!this.closed) {
      this.closed = true;
      this.onClose();
    }
    this.waiting?.({ value: undefined, done: true });
    this.waiting = null;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
