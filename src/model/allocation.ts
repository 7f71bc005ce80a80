import { AppError, ErrorCode } from "../errors.js";

export interface Amount {
  readonly kind: string;
  readonly amount: number;
}

export type AllocationStatus = "ACTIVE" | "RELEASED" | "EXPIRED";
export type AllocationMode = "EXACT" | "UP_TO";

/** An allocation as the API shows it. Ids are `<contextId>#<n>`. */
export interface Allocation {
  readonly id: string;
  readonly contextId: string;
  readonly parentId: string | null;
  readonly tier: number;
  /** Ancestor allocation ids, outermost first (the budget is not one). */
  readonly path: readonly string[];
  readonly status: AllocationStatus;
  readonly requested: readonly Amount[];
  readonly granted: readonly Amount[];
  readonly consumed: readonly Amount[];
  /** Granted to active children. */
  readonly reserved: readonly Amount[];
  /** granted - consumed - reserved. */
  readonly available: readonly Amount[];
  readonly holder: string | null;
  readonly purpose: string | null;
  readonly createdAt: string;
  readonly expiresAt: string | null;
  readonly endedAt: string | null;
}

export interface Budget {
  /** `resources.limits`. */
  readonly limits: readonly Amount[];
  /** Granted to active tier-2 allocations. */
  readonly granted: readonly Amount[];
  /** Consumed by ended allocations. */
  readonly consumed: readonly Amount[];
  /** limits - granted - consumed, never below 0. */
  readonly available: readonly Amount[];
}

/** An allocation as the scripts encode it (see lua/_2-ledger.lua allocation_json). */
export interface RawAllocation {
  n: number;
  contextId: string;
  parent: number | null;
  tier: number;
  path: number[];
  status: AllocationStatus;
  requested: Amount[];
  granted: Amount[];
  consumed: Amount[];
  reserved: Amount[];
  holder: string | null;
  purpose: string | null;
  createdAt: number;
  expiresAt: number | null;
  endedAt: number | null;
}

/** Splits `<contextId>#<n>`; throws NOT_FOUND for anything else. */
export function parseAllocationId(id: string): { contextId: string; n: string } {
  const at = id.lastIndexOf("#");
  const n = id.slice(at + 1);
  if (at <= 0 || !/^[1-9][0-9]*$/.test(n)) {
    throw new AppError(ErrorCode.NOT_FOUND, `${JSON.stringify(id)} is not an allocation id`, { path: "allocationId" });
  }
  return { contextId: id.slice(0, at), n };
}

/** An instant in ms since the epoch as ISO 8601 (null stays null). */
export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** An allocation as the API shows it, from its script encoding. */
export function toAllocation(raw: RawAllocation): Allocation {
  const id = (n: number) => `${raw.contextId}#${n}`;
  const of = (list: Amount[], kind: string) => list.find((a) => a.kind === kind)?.amount ?? 0;
  return {
    id: id(raw.n),
    contextId: raw.contextId,
    parentId: raw.parent === null ? null : id(raw.parent),
    tier: raw.tier,
    path: raw.path.map(id),
    status: raw.status,
    requested: raw.requested,
    granted: raw.granted,
    consumed: raw.consumed,
    reserved: raw.reserved,
    available: raw.granted.map(({ kind, amount }) => ({
      kind,
      amount: Math.max(0, amount - of(raw.consumed, kind) - of(raw.reserved, kind)),
    })),
    holder: raw.holder,
    purpose: raw.purpose,
    createdAt: iso(raw.createdAt)!,
    expiresAt: iso(raw.expiresAt),
    endedAt: iso(raw.endedAt),
  };
}

/** Parses an allocation from a feed entry or script reply. */
export function allocationFromJson(json: string): Allocation {
  return toAllocation(JSON.parse(json) as RawAllocation);
}
