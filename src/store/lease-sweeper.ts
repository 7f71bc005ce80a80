import { isConnectionFailure } from "../redis/clients.js";

/**
 * The lease sweeper: runs `sweep` (LedgerStore.sweep) `intervalMs` after the previous pass ended,
 * so that one pass runs at a time however long Redis takes to answer. A pass that fails because
 * Redis is unreachable or stalled is dropped silently: the next one tries again, and accepted ledger
 * operations expire overdue leases on their own. Any other failure goes to `report` with its
 * cause, once per run of failing passes (a lasting fault would otherwise be reported every pass).
 */
export class LeaseSweeper {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** The last pass failed other than by a lost connection, and was reported. */
  private failing = false;

  constructor(
    private readonly sweep: () => Promise<unknown>,
    private readonly intervalMs: number,
    private readonly report: (err: unknown) => void,
  ) {
    this.schedule();
  }

  /** No pass starts after this; one that is running ends on its own. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (!this.stopped) this.timer = setTimeout(() => void this.pass(), this.intervalMs);
  }

  private async pass(): Promise<void> {
    try {
      await this.sweep();
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
