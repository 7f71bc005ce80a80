import { isConnectionFailure } from "../redis/clients.js";

/**
 * Runs `pass` again and again, `intervalMs` after the previous pass ended, so that one pass runs at
 * a time however long Redis takes to answer: the lease sweeper (LedgerStore.sweep), the deletion
 * sweeper (Deletions.sweep) and the heartbeat (store/instances.ts). The first pass runs at once
 * with `runFirstNow`, else after `intervalMs`. A pass that fails because Redis is unreachable or
 * stalled is dropped silently: the next one tries again. Any other failure goes to `report` with
 * its cause, once per run of failing passes (a lasting fault would otherwise be reported every
 * pass). Its timer never keeps the process alive on its own.
 */
export class PeriodicPass {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** The last pass failed other than by a lost connection, and was reported. */
  private failing = false;
  /** The pass running now, or the last one (never rejects). */
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly pass: () => Promise<unknown>,
    private readonly intervalMs: number,
    private readonly report: (err: unknown) => void,
    runFirstNow = false,
  ) {
    if (runFirstNow) this.running = this.run();
    else this.schedule();
  }

  /** Resolves when the pass running now (if any) has ended. */
  settled(): Promise<void> {
    return this.running;
  }

  /** No pass starts after this; resolves when one that is running has ended. */
  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    return this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.run();
    }, this.intervalMs);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    try {
      await this.pass();
      this.failing = false;
    } catch (err) {
      if (!isConnectionFailure(err)) {
        if (!this.failing) this.report(err);
        this.failing = true;
      }
    }
    this.schedule();
  }
}
