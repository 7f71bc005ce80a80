/**
 * Waits for a contended or polling loop: the first wait is `firstMs`, each next one doubles up to
 * `maxMs`, each drawn at random from half to all of that (jitter, so racing clients spread out),
 * and `reset()` starts over after progress. A loop that waits this way yields the CPU to the work
 * it waits for (the server, redis-server, the other clients) instead of spinning, which is what
 * keeps such tests quick on a busy machine.
 */
export class Backoff {
  private nextMs: number;

  constructor(
    private readonly firstMs = 1,
    private readonly maxMs = 50,
  ) {
    this.nextMs = firstMs;
  }

  /** Resolves after the next wait, in ms as above. */
  wait(): Promise<void> {
    const ms = this.nextMs * (0.5 + Math.random() / 2);
    this.nextMs = Math.min(this.nextMs * 2, this.maxMs);
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** The next wait is the first one again. */
  reset(): void {
    this.nextMs = this.firstMs;
  }
}
