import type { Allocation } from "../src/model/allocation.js";
import type { ChangeEntry } from "../src/model/change.js";
import type { Lock } from "../src/model/lock.js";
import type { ContextView } from "../src/store/contexts.js";
import { builder } from "./builder.js";

/**
 * The object types that more than one domain file of the schema refers to, declared once here and
 * implemented in their domain's file, so that the domain files do not import each other in a cycle.
 */
export const SwarmContextRef = builder.objectRef<ContextView>("SwarmContext");
export const ContextChangeRef = builder.objectRef<ChangeEntry>("ContextChange");
export const AllocationRef = builder.objectRef<Allocation>("Allocation");
export const LockRef = builder.objectRef<Lock>("Lock");
