/** What a queue tells its producer; one object for all of its queues, rather than closures per queue. */
export interface QueueOwner<T> {
  /** Called once when the subscriber of `queue` goes away or is ended. */
  queueClosed(queue: SubscriberQueue<T>): void;
  /** Called whenever the subscriber of `queue` takes a value (room appeared). */
  queueTaken(queue: SubscriberQueue<T>): void;
}

/**
 * One subscriber's end of a shared stream: the values it has not taken yet, in order, counted in
 * changes and in bytes (both given by the producer) so that the producer can tell when it falls
 * too far behind. Iterating it yields them; return() (the client went away) detaches it.
 */
export class SubscriberQueue<T> implements AsyncIterableIterator<T> {
  private readonly queue: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | null = null;
  private closed = false;
  /** Sum of the weights (changes) of the values not taken yet. */
  queuedWeight = 0;
  /** Sum of the sizes of the values not taken yet. */
  private queuedBytes = 0;
  /**
   * The size of the value taken last, until the subscriber asks for the next: the transports ask
   * once they have handed the previous one to the socket, so until then it is being written.
   */
  private takenBytes = 0;
  /** performance.now() when the subscriber last asked for a value. */
  lastTakeAt = performance.now();

  constructor(
    private readonly weigh: (value: T) => number,
    private readonly size: (value: T) => number,
    private readonly owner: QueueOwner<T>,
  ) {}

  /** The values not taken yet, oldest first (the producer reads them to say what was missed). */
  get undelivered(): readonly T[] {
    return this.queue;
  }

  /** Bytes this subscriber holds: queued, and the value being written to it. */
  get heldBytes(): number {
    return this.queuedBytes + this.takenBytes;
  }

  /** Whether it holds more than one value (queued, or queued and being written): a single one is never too much. */
  get holdsMoreThanOne(): boolean {
    return this.queue.length + (this.takenBytes > 0 ? 1 : 0) > 1;
  }

  push(value: T): void {
    if (this.closed) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      this.takenBytes = this.size(value);
      resolve({ value, done: false });
    } else {
      this.queue.push(value);
      this.queuedWeight += this.weigh(value);
      this.queuedBytes += this.size(value);
    }
  }

  /** Drops what is queued, queues `last` as the final values, and ends the stream after them. */
  end(last: readonly T[]): void {
    if (this.closed) return;
    this.drop();
    for (const value of last) this.push(value);
    this.closed = true;
    this.owner.queueClosed(this);
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
      this.queuedBytes -= this.size(value);
      this.takenBytes = this.size(value);
      this.owner.queueTaken(this);
      return Promise.resolve({ value, done: false });
    }
    this.takenBytes = 0;
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.owner.queueTaken(this);
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.drop();
    if (!this.closed) {
      this.closed = true;
      this.owner.queueClosed(this);
    }
    this.waiting?.({ value: undefined, done: true });
    this.waiting = null;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private drop(): void {
    this.queue.length = 0;
    this.queuedWeight = 0;
    this.queuedBytes = 0;
    this.takenBytes = 0;
  }
}
