import type { PatchOperation } from "../json/patch.js";
import type { Allocation } from "./allocation.js";
import type { Lock } from "./lock.js";

/** One entry of a context's change feed. */
export interface ChangeEntry {
  readonly contextId: string;
  readonly seq: number;
  readonly version: number;
  readonly kind: string;
  readonly paths: readonly string[];
  readonly patch: readonly PatchOperation[];
  readonly actor: string;
  readonly reason: string | null;
  readonly at: string;
  /** The allocation after the change, for ledger changes. */
  readonly allocation: Allocation | null;
  /** The lock after the change, for lock changes. */
  readonly lock: Lock | null;
}
