import { AppError, ErrorCode } from "../errors.js";

/** Resource kinds are data; this is their grammar (API.md, "budget"). */
export const RESOURCE_KIND = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

/** Allocation profile names (`policy.allocation.profiles`). */
export const PROFILE_NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/;

/** Lock names go into Redis keys (`lock:<name>`); holders are free text of this length at most. */
export const LOCK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/** Throws VALIDATION_FAILED naming `path` (an argument: `name`, `fence.lock`) unless `name` matches LOCK_NAME. */
export function checkLockName(name: string, path: string): void {
  if (!LOCK_NAME.test(name)) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, `${path}: lock name ${JSON.stringify(name)} must match ${LOCK_NAME.source}`, { path });
  }
}
export const HOLDER_MAX_LENGTH = 200;

/** The longest lease the ledger accepts, in ms (365 days): `leaseMs` arguments and the policy's leases. */
export const LEASE_MS_MAX = 365 * 24 * 3600 * 1000;

/** Context ids go into Redis keys inside a `{ctx:<id>}` hash tag, so braces are never allowed. */
export const CONTEXT_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
