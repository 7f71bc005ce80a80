import { randomUUID } from "node:crypto";
import type { RedisClient } from "./clients.js";
import { AppError, ErrorCode } from "../errors.js";
import type { Keys } from "./keys.js";
import { scriptsOf } from "./scripts.js";

/** The epoch key's value once an instance has seen the state it names disappear. */
const LOST = "lost";
/** How an epoch written by `reinitialize` starts: every instance adopts it. */
const REINITIALIZED = "reinitialized:";
/** How long an operation waits for a reconnect's check before it is refused, in ms. */
const VERIFY_WAIT_MS = 2_000;

/** What the guard last concluded about Redis's state. */
export type StateStatus = "intact" | "unverified" | "lost";

/** What the guard reports as it goes. */
export interface StateEvents {
  /** The status changed. */
  changed(status: StateStatus): void;
  /** One epoch read took `ms`: a sample of Redis latency. */
  roundTripMs(ms: number): void;
}

/**
 * Tells whether Redis still holds the state this deployment wrote, so that a Redis restarted
 * empty (or flushed) is refused rather than served from a blank ledger.
 *
 * The rule: the state carries an epoch, `<prefix>:epoch`. An instance that finds neither an epoch
 * nor any state (a new deployment) writes a random id, with SET NX so that of instances starting
 * together one id wins. Each instance remembers the epoch it verified and checks it at start,
 * after every reconnect and every `checkMs`: the same epoch is intact; a different one is adopted
 * only when `reinitialize` wrote it (its value starts `reinitialized:`) or the instance had
 * verified none yet. A missing epoch where state was seen, or a first-start epoch other than the
 * one verified (an instance started on the flushed keyspace and wrote it), means the state is
 * lost: the instance replaces the epoch with "lost" (unless it changed since it was read), so that
 * every instance, the one that wrote the new epoch included, refuses everything with UNAVAILABLE
 * until an admin calls `reinitialize`, whose epoch every instance adopts at its next check.
 * Until a reconnect's check is done, operations wait, at most VERIFY_WAIT_MS, and are then
 * refused; commands queued across the reconnect are ones already sent, which scripts keep safe.
 */
export class StateGuard {
  private status: StateStatus = "unverified";
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  /** The epoch this instance last found intact: from then on, only it or a re-initialisation is. */
  private verified: string | undefined;
  /** Operations waiting for the status to leave "unverified". */
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly events: StateEvents,
  ) {}

  /**
   * Checks the state now (initialising the epoch of an empty keyspace), then keeps watching
   * every `checkMs`. Rejects if Redis cannot be reached.
   */
  static async open(redis: RedisClient, keys: Keys, checkMs: number, events: StateEvents): Promise<StateGuard> {
    const guard = new StateGuard(redis, keys, events);
    await guard.check();
    redis.on("close", guard.onClose);
    redis.on("ready", guard.recheck);
    guard.timer = setInterval(guard.recheck, checkMs);
    return guard;
  }

  get current(): StateStatus {
    return this.status;
  }

  /**
   * Nothing when the state is intact (the common case costs no promise); otherwise a promise
   * that resolves once a check finds it intact, or rejects with UNAVAILABLE when it is lost or
   * stays unverified for VERIFY_WAIT_MS.
   */
  whenIntact(): Promise<void> | undefined {
    if (this.status === "intact") return undefined;
    if (this.status === "lost") return Promise.reject(this.unavailable());
    return new Promise((resolve, reject) => {
      const settle = () => {
        clearTimeout(timer);
        this.waiters.delete(settle);
        if (this.status === "intact") resolve();
        else reject(this.unavailable());
      };
      const timer = setTimeout(settle, VERIFY_WAIT_MS);
      this.waiters.add(settle);
    });
  }

  private unavailable(): AppError {
    return new AppError(
      ErrorCode.UNAVAILABLE,
      this.status === "lost"
        ? "Redis lost this deployment's state (restarted empty or flushed); an admin must re-initialise it (README, Operations)"
        : "Redis is unreachable, not answering, or not yet verified after a reconnect; retry shortly",
      { state: this.status },
    );
  }

  /**
   * Declares the present Redis content the deployment's state: a new epoch marked as written
   * here (`reinitialized:<id>`), which every instance adopts at its next check, ending "lost"
   * everywhere. What was lost stays lost. Rejects if Redis cannot be reached.
   */
  async reinitialize(): Promise<void> {
    await this.redis.set(this.keys.epoch, `${REINITIALIZED}${randomUUID()}`);
    // A check under way may have read the epoch before the SET: the answer must come from after it.
    await this.checking?.catch(() => undefined);
    await this.check();
  }

  /** Reads the epoch once and updates the status; concurrent callers share the read. */
  check(): Promise<void> {
    this.checking ??= this.readEpoch().finally(() => (this.checking = undefined));
    return this.checking;
  }

  /** Stops watching (before the Redis connection is closed on purpose). */
  close(): void {
    clearInterval(this.timer);
    this.redis.off("close", this.onClose);
    this.redis.off("ready", this.recheck);
  }

  private readonly onClose = () => this.set("unverified");
  /**
   * A check that fails (Redis unreachable, or stalled past the command timeout while the
   * connection stays up) leaves the state unverified until the next reconnect or tick.
   */
  private readonly recheck = () => void this.check().catch(() => this.set("unverified"));

  private async readEpoch(): Promise<void> {
    const started = performance.now();
    let epoch = await this.redis.get(this.keys.epoch);
    this.events.roundTripMs(performance.now() - started);
    if (epoch === null && this.verified === undefined && (await this.keyspaceEmpty())) {
      // A new deployment. SET NX: of instances starting together, one epoch wins.
      await this.redis.set(this.keys.epoch, randomUUID(), "NX");
      epoch = await this.redis.get(this.keys.epoch);
    }
    for (;;) {
      if (epoch === LOST) return this.set("lost");
      if (epoch !== null && (this.verified === undefined || epoch === this.verified || epoch.startsWith(REINITIALIZED))) {
        this.verified = epoch;
        return this.set("intact");
      }
      // State was here and is gone: leave a mark that every instance, now or later, refuses on.
      epoch = await scriptsOf(this.redis).markEpochLost(this.keys.epoch, epoch ?? "", LOST);
    }
  }

  private async keyspaceEmpty(): Promise<boolean> {
    // One EXISTS per key: on a Redis Cluster they lie in different slots.
    const found = await Promise.all(this.keys.indexes.flatMap((ix) => [this.redis.exists(ix.contexts), this.redis.exists(ix.feeds)]));
    return found.every((n) => n === 0);
  }

  private set(status: StateStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.events.changed(status);
    if (status !== "unverified") for (const settle of [...this.waiters]) settle();
  }
}
