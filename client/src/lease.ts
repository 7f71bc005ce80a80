import { sleep } from "./backoff.js";
import { SwarmError } from "./errors.js";

/**
 * Keeps a lease (a lock's, an allocation's) in the background: renews it every third of
 * `leaseMs` until stop(), and resolves `lost` (never rejects) once it is gone: a renewal refused
 * with one of `goneCodes`, or, when `expiry` names the lease, renewals failing (their retries
 * spent) until it ran out. Other failures are tried again at the next turn. Its timers do not keep
 * the process alive by themselves.
 */
export class LeaseKeeper {
  readonly lost: Promise<SwarmError>;
  private readonly controller = new AbortController();
  private markLost!: (reason: SwarmError) => void;
  private readonly running: Promise<void>;

  constructor(
    private readonly leaseMs: number,
    /** When the lease ends unless renewed; renewals move it on. */
    public expiresAt: string,
    private readonly renew: () => Promise<string>,
    private readonly goneCodes: ReadonlySet<string>,
    private readonly expiry: string | null,
  ) {
    this.lost = new Promise((resolve) => (this.markLost = resolve));
    this.running = this.keep();
  }

  /** Aborted once the lease is lost (reason: the SwarmError) or stopped (reason: stop's). */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Stops renewing, `signal` aborting with `reason`; resolves once no renewal is in flight. */
  async stop(reason?: unknown): Promise<void> {
    this.controller.abort(reason);
    await this.running;
  }

  private async keep(): Promise<void> {
    const { signal } = this.controller;
    while (!signal.aborted) {
      await sleep(this.leaseMs / 3, signal, true);
      if (signal.aborted) return;
      try {
        this.expiresAt = await this.renew();
      } catch (err) {
        const error = err instanceof SwarmError ? err : new SwarmError("UNAVAILABLE", String(err), {}, { cause: err });
        if (this.goneCodes.has(error.code)) this.lose(error);
        else if (this.expiry !== null && Date.now() >= Date.parse(this.expiresAt)) {
          this.lose(new SwarmError("UNAVAILABLE", `${this.expiry}: renewals failed until the lease ran out (${error.message})`, {}, { cause: error }));
        }
      }
    }
  }

  private lose(reason: SwarmError): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort(reason);
    this.markLost(reason);
  }
}
