import { SwarmError } from "./errors.js";
import { LeaseKeeper } from "./lease.js";
import type { AllocationMode, ClientAllocationFragment } from "./operations.js";

/** Renewal refusals that mean the allocation has ended. */
const ALLOCATION_GONE: ReadonlySet<string> = new Set(["ALLOCATION_ENDED"]);

/** Resource amounts by kind, e.g. `{ credits: 500, tokens: 20000 }`. */
export type Amounts = Readonly<Record<string, number>>;

/** Options of `allocate`. */
export interface AllocateOptions {
  /** A profile of policy.allocation.profiles; kinds in the request override its amounts. */
  readonly profile?: string;
  /** EXACT (default): all or nothing; UP_TO: what the budget allows, per kind. */
  readonly mode?: AllocationMode;
  /** The lease in ms (default: the profile's, else policy.allocation.defaultLeaseMs, else none); renewed in the background. */
  readonly leaseMs?: number;
  /** Who holds it (default: the client's `agent`). */
  readonly holder?: string;
  readonly purpose?: string;
  readonly reason?: string;
}

/** The ledger calls an allocation handle makes. */
export interface LedgerCalls {
  allocate(parentId: string | null, request: Amounts | undefined, options: AllocateOptions): Promise<ClientAllocationFragment>;
  report(id: string, usage: Amounts): Promise<ClientAllocationFragment>;
  renew(id: string, leaseMs: number): Promise<ClientAllocationFragment>;
  release(id: string, usage: Amounts | undefined): Promise<ClientAllocationFragment>;
}

/**
 * An allocation while it is held: renews its lease in the background (every third of it), and
 * releases it on `release()` or when disposed (`await using`), whichever comes first.
 */
export class AllocationHandle {
  /** `<contextId>#<n>`. */
  readonly id: string;
  /** What was granted, per kind (with UP_TO, possibly less than asked). */
  readonly granted: Amounts;
  /** Consumed so far (reported usage), per kind, as of the last answer. */
  consumed: Amounts;
  /** The lease, renewed in the background; null: none. */
  private readonly lease: LeaseKeeper | null;
  /**
   * Resolves (never rejects) with the reason once the allocation ended other than by this
   * handle's release: a renewal answered ALLOCATION_ENDED (its lease, or an ancestor's, ran out,
   * or an ancestor was released). Never resolves while it is held.
   */
  readonly lost: Promise<SwarmError>;
  private ending: Promise<void> | undefined;

  constructor(
    private readonly calls: LedgerCalls,
    allocation: ClientAllocationFragment,
  ) {
    this.id = allocation.id;
    this.granted = amountsOf(allocation.granted);
    this.consumed = amountsOf(allocation.consumed);
    const leaseMs = allocation.expiresAt === null ? null : Date.parse(allocation.expiresAt) - Date.parse(allocation.createdAt);
    this.lease =
      leaseMs === null
        ? null
        : new LeaseKeeper(leaseMs, allocation.expiresAt!, async () => (await calls.renew(this.id, leaseMs)).expiresAt!, ALLOCATION_GONE, null);
    this.lost = this.lease?.lost ?? new Promise(() => undefined);
  }

  /** When the lease ends unless renewed; null: no lease. */
  get expiresAt(): string | null {
    return this.lease?.expiresAt ?? null;
  }

  /** Adds `usage` to consumed; USAGE_EXCEEDED if it would exceed what may still be spent. */
  async report(usage: Amounts): Promise<void> {
    this.consumed = amountsOf((await this.calls.report(this.id, usage)).consumed);
  }

  /** A child allocation carved from this one (the next tier), with its own handle. */
  async allocate(request: Amounts | undefined, options: AllocateOptions = {}): Promise<AllocationHandle> {
    return new AllocationHandle(this.calls, await this.calls.allocate(this.id, request, options));
  }

  /**
   * Ends the allocation (and its active children) after adding the final `usage`; the unused
   * rest returns to the parent. Once only: later calls wait for the first. An allocation that
   * ended already (ALLOCATION_ENDED) is not an error here.
   */
  release(usage?: Amounts): Promise<void> {
    this.ending ??= (async () => {
      await this.lease?.stop();
      try {
        this.consumed = amountsOf((await this.calls.release(this.id, usage)).consumed);
      } catch (err) {
        if (!(err instanceof SwarmError) || err.code !== "ALLOCATION_ENDED") throw err;
      }
    })();
    return this.ending;
  }

  /** `await using allocation = await swarm.allocate(...)` releases it when the block ends, even by a throw. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

/** `[{kind, amount}]` as the API gives it, as a map. */
export function amountsOf(list: readonly { kind: string; amount: number }[]): Amounts {
  return Object.fromEntries(list.map(({ kind, amount }) => [kind, amount]));
}

/** A map of amounts as the API takes it. */
export function amountList(amounts: Amounts): { kind: string; amount: number }[] {
  return Object.entries(amounts).map(([kind, amount]) => ({ kind, amount }));
}
