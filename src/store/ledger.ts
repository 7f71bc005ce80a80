import type { Redis } from "ioredis";
import { AppError, ErrorCode } from "../errors.js";
import type { Keys } from "../redis/keys.js";
import { scriptsOf, type LedgerScript } from "../redis/scripts.js";
import { parseAllocationId, toAllocation, type Allocation, type AllocationMode, type AllocationStatus, type Amount, type Budget, type RawAllocation } from "../model/allocation.js";
import { checkLockName, HOLDER_MAX_LENGTH, LEASE_MS_MAX, RESOURCE_KIND } from "../model/identifiers.js";
import { toLock, type Lock, type RawLock } from "../model/lock.js";
import { checkOpId, opRecord, parseWriteReply, settle, type OpRecord, type ScriptReply } from "./script-replies.js";

export interface LedgerOptions {
  readonly actor: string;
  readonly opId?: string | null;
  readonly reason?: string | null;
}

export interface AllocateRequest {
  readonly parentId?: string | null;
  readonly request?: readonly Amount[] | null;
  readonly profile?: string | null;
  readonly mode: AllocationMode;
  readonly leaseMs?: number | null;
  readonly holder?: string | null;
  readonly purpose?: string | null;
}

function invalid(path: string, message: string): AppError {
  return new AppError(ErrorCode.VALIDATION_FAILED, message, { path });
}

/** Amounts flattened for a script, "kind amount ..."; throws VALIDATION_FAILED on bad input. */
function flatAmounts(amounts: readonly Amount[], path: string): string {
  const seen = new Set<string>();
  return amounts
    .map(({ kind, amount }) => {
      if (!RESOURCE_KIND.test(kind)) throw invalid(path, `resource kind ${JSON.stringify(kind)} must match ${RESOURCE_KIND.source}`);
      if (!Number.isSafeInteger(amount) || amount < 0) throw invalid(path, `amount of ${kind} must be a non-negative integer`);
      if (seen.has(kind)) throw invalid(path, `resource kind ${kind} is named twice`);
      seen.add(kind);
      return `${kind} ${amount}`;
    })
    .join(" ");
}

function checkHolder(holder: string | null | undefined): void {
  if (holder != null && (holder.length === 0 || holder.length > HOLDER_MAX_LENGTH)) {
    throw invalid("holder", `holder must be 1 to ${HOLDER_MAX_LENGTH} characters`);
  }
}

function checkLease(leaseMs: number | null | undefined, path: string): void {
  if (leaseMs != null && (!Number.isSafeInteger(leaseMs) || leaseMs < 1 || leaseMs > LEASE_MS_MAX)) {
    throw invalid(path, `${path} must be an integer from 1 to ${LEASE_MS_MAX}`);
  }
}

function amountsOf(hash: Record<string, string>, prefix: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [field, value] of Object.entries(hash)) if (field.startsWith(prefix)) out.set(field.slice(prefix.length), Number(value));
  return out;
}

/**
 * The resource ledger and locks of every context: each change is one Lua script that checks
 * the invariant (consumed + reserved <= granted at every node, per kind) before it writes, and
 * appends its feed entry. Reads go straight to the hashes.
 */
export class LedgerStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly config: { readonly feedRetention: number; readonly opIdTtlSeconds: number; readonly resendTtlSeconds: number },
  ) {}

  /** Grants an allocation; see allocate-9.lua for the rules and refusals. */
  async allocate(contextId: string, req: AllocateRequest, options: LedgerOptions): Promise<Allocation> {
    const parent = req.parentId == null ? "" : parseAllocationId(req.parentId);
    if (parent !== "" && parent.contextId !== contextId) {
      throw invalid("parentId", `allocation ${req.parentId} belongs to another context`);
    }
    if (req.request == null && req.profile == null) throw invalid("request", "give request, profile, or both");
    checkLease(req.leaseMs, "leaseMs");
    checkHolder(req.holder);
    const request = flatAmounts(req.request ?? [], "request");
    const reply = await this.run("allocate", contextId, [req], options, [
      parent === "" ? "" : parent.n,
      request,
      req.profile ?? "",
      req.mode,
      req.leaseMs ?? "",
      req.holder ?? "",
      req.purpose ?? "",
    ]);
    return this.indexLease(toAllocation((reply as { allocation: RawAllocation }).allocation));
  }

  /** Adds usage to an allocation's consumption. */
  async reportUsage(allocationId: string, usage: readonly Amount[], options: LedgerOptions): Promise<Allocation> {
    const { contextId, n } = parseAllocationId(allocationId);
    if (usage.length === 0) throw invalid("usage", "usage names no resource kind");
    const reply = await this.run("reportUsage", contextId, [allocationId, usage], options, [
      n,
      flatAmounts(usage, "usage"),
    ]);
    return toAllocation((reply as { allocation: RawAllocation }).allocation);
  }

  /**
   * Ends an allocation and its descendants, with optional final usage. A subtree larger than one
   * script's step (see lua/release-9.lua) is released over several calls, made back to back here;
   * the answer comes with the last. Before the second, the context is filed in the lease index as
   * due, so that the sweeper finishes the release if this server stops first.
   */
  async release(allocationId: string, usage: readonly Amount[] | null, options: LedgerOptions): Promise<Allocation> {
    const { contextId, n } = parseAllocationId(allocationId);
    const args = [n, flatAmounts(usage ?? [], "usage")];
    // Every call of one release goes under the same record: a later call continues the release.
    const record = this.recordOf("release", contextId, [allocationId, usage], options);
    let reply = await this.call("release", contextId, record, options, args);
    if ("pending" in reply) {
      await this.redis.zadd(this.keys.leaseIndex, "LT", 0, contextId);
      while ("pending" in reply) reply = await this.call("release", contextId, record, options, args);
    }
    return toAllocation(settle<{ allocation: RawAllocation }>(reply).outcome.allocation);
  }

  /** Sets an allocation's lease to end `leaseMs` from now. */
  async renew(allocationId: string, leaseMs: number, options: LedgerOptions): Promise<Allocation> {
    const { contextId, n } = parseAllocationId(allocationId);
    checkLease(leaseMs, "leaseMs");
    const reply = await this.run("renewAllocation", contextId, [allocationId, leaseMs], options, [n, leaseMs]);
    return this.indexLease(toAllocation((reply as { allocation: RawAllocation }).allocation));
  }

  async acquireLock(contextId: string, name: string, holder: string, leaseMs: number, options: LedgerOptions): Promise<Lock> {
    checkLockName(name, "name");
    checkHolder(holder);
    checkLease(leaseMs, "leaseMs");
    const reply = await this.run("acquireLock", contextId, [name, holder, leaseMs], options, [name, holder, leaseMs]);
    return toLock((reply as { lock: RawLock }).lock);
  }

  async renewLock(contextId: string, name: string, token: number, leaseMs: number, options: LedgerOptions): Promise<Lock> {
    checkLockName(name, "name");
    checkLease(leaseMs, "leaseMs");
    const reply = await this.run("renewLock", contextId, [name, token, leaseMs], options, [name, token, leaseMs]);
    return toLock((reply as { lock: RawLock }).lock);
  }

  async releaseLock(contextId: string, name: string, token: number, options: LedgerOptions): Promise<Lock> {
    checkLockName(name, "name");
    const reply = await this.run("releaseLock", contextId, [name, token], options, [name, token]);
    return toLock((reply as { lock: RawLock }).lock);
  }

  /**
   * One pass of the lease sweeper: in every context the lease index says has something due (by
   * Redis's clock), ends what is due, a step (one script) at a time until nothing is: overdue
   * leases and releases left unfinished by their server. Then files each context under its next
   * expiry. Returns how many contexts it swept. Every accepted ledger or lock operation also takes
   * a step first (a refused one writes nothing), so this only bounds how long an allocation
   * nobody changes shows ACTIVE past its lease.
   */
  async sweep(maxContexts = 200): Promise<number> {
    const [seconds, micros] = await this.redis.time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const due = await this.redis.zrangebyscore(this.keys.leaseIndex, "-inf", now, "LIMIT", 0, maxContexts);
    for (const contextId of due) {
      let next: number | null = null;
      try {
        let step: { more: boolean; nextExpiry: number | null };
        do step = (await this.run("expireDue", contextId, [], { actor: "lease-sweeper" }, [])) as typeof step;
        while (step.more);
        next = step.nextExpiry;
      } catch (err) {
        if (!(err instanceof AppError && err.code === ErrorCode.NOT_FOUND)) throw err;
      }
      if (next === null) await this.redis.zrem(this.keys.leaseIndex, contextId);
      else await this.redis.zadd(this.keys.leaseIndex, next, contextId);
    }
    return due.length;
  }

  /** Files the allocation's context under its expiry in the lease index if that is earlier. */
  private async indexLease(allocation: Allocation): Promise<Allocation> {
    if (allocation.expiresAt !== null) {
      await this.redis.zadd(this.keys.leaseIndex, "LT", Date.parse(allocation.expiresAt), allocation.contextId);
    }
    return allocation;
  }

  /** An allocation by id, or null. */
  async allocation(allocationId: string): Promise<Allocation | null> {
    let parsed: { contextId: string; n: string };
    try {
      parsed = parseAllocationId(allocationId);
    } catch {
      return null;
    }
    const found = (await this.allocationsByNumber(parsed.contextId, [parsed.n]))[0] ?? null;
    // A deleted context's allocations are ended at once, though their keys go in steps.
    if (found && (await this.redis.exists(this.keys.context(parsed.contextId).meta)) === 0) return null;
    return found;
  }

  /**
   * Every allocation of a context (active or ended), oldest first, `batchSize` at a time, so that a
   * reader can stop (by throwing) before it has read more than it may hold.
   */
  async *allocationBatches(contextId: string, batchSize: number): AsyncGenerator<Allocation[]> {
    const key = this.keys.context(contextId).allocs;
    // Numbers only grow and are never removed, so pages by rank neither skip nor repeat.
    for (let start = 0; ; start += batchSize) {
      const numbers = await this.redis.zrange(key, start, start + batchSize - 1);
      if (numbers.length > 0) yield await this.allocationsByNumber(contextId, numbers);
      if (numbers.length < batchSize) return;
    }
  }

  /**
   * The swarm's budget: limits and what the ledger holds of them, per kind of the limits plus any
   * kind still granted or consumed (its limit then shows as 0).
   */
  async budget(contextId: string): Promise<Budget> {
    const k = this.keys.context(contextId);
    const [limitsHash, rootHash] = await Promise.all([this.redis.hgetall(k.limits), this.redis.hgetall(k.root)]);
    const limits = new Map(Object.entries(limitsHash).map(([kind, v]) => [kind, Number(v)]));
    const granted = amountsOf(rootHash, "r:");
    const consumed = amountsOf(rootHash, "c:");
    // The scripts write each of an allocation's kinds into its parent, 0 included, so a kind the
    // budget does not hold (granted 0 under UP_TO) shows only while some of it is held.
    const held = (m: Map<string, number>) => [...m].filter(([, amount]) => amount !== 0).map(([kind]) => kind);
    const kinds = [...new Set([...limits.keys(), ...held(granted), ...held(consumed)])].sort();
    const list = (m: Map<string, number>) => kinds.map((kind) => ({ kind, amount: m.get(kind) ?? 0 }));
    return {
      limits: list(limits),
      granted: list(granted),
      consumed: list(consumed),
      available: kinds.map((kind) => ({
        kind,
        amount: Math.max(0, (limits.get(kind) ?? 0) - (granted.get(kind) ?? 0) - (consumed.get(kind) ?? 0)),
      })),
    };
  }

  /** Locks of a context whose lease has not run out (by Redis's clock). */
  async locks(contextId: string): Promise<Lock[]> {
    const k = this.keys.context(contextId);
    const names = (await this.redis.smembers(k.locks)).sort();
    const [[seconds, micros], ...hashes] = await Promise.all([
      this.redis.time(),
      ...names.map((name) => this.redis.hgetall(k.lock(name))),
    ] as const);
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    return names
      .map((name, i) => ({ name, hash: hashes[i] as Record<string, string> }))
      .filter(({ hash }) => hash.token !== undefined && Number(hash.expiresAt) > now)
      .map(({ name, hash }) => toLock({ name, holder: hash.holder!, token: Number(hash.token), expiresAt: Number(hash.expiresAt) }));
  }

  private async allocationsByNumber(contextId: string, numbers: readonly string[]): Promise<Allocation[]> {
    const k = this.keys.context(contextId);
    const hashes = await Promise.all(numbers.map((n) => this.redis.hgetall(k.alloc(n))));
    const out: Allocation[] = [];
    numbers.forEach((n, i) => {
      const h = hashes[i]!;
      if (!h.status) return;
      const kinds = h.kinds ? h.kinds.split(" ") : [];
      const list = (prefix: string) => kinds.map((kind) => ({ kind, amount: Number(h[prefix + kind] ?? 0) }));
      out.push(
        toAllocation({
          n: Number(n),
          contextId,
          parent: h.parent ? Number(h.parent) : null,
          tier: Number(h.tier),
          path: h.path ? h.path.split(" ").map(Number) : [],
          status: h.status as AllocationStatus,
          requested: list("q:"),
          granted: list("g:"),
          consumed: list("c:"),
          reserved: list("r:"),
          holder: h.holder || null,
          purpose: h.purpose || null,
          createdAt: Number(h.createdAt),
          expiresAt: h.expiresAt ? Number(h.expiresAt) : null,
          endedAt: h.endedAt ? Number(h.endedAt) : null,
        }),
      );
    });
    return out;
  }

  /** Runs a ledger script under a record of its own (fingerprinted with the script's name) and settles its reply. */
  private async run(
    script: LedgerScript,
    contextId: string,
    request: readonly unknown[],
    options: LedgerOptions,
    args: readonly (string | number)[],
  ): Promise<Record<string, unknown>> {
    const record = this.recordOf(script, contextId, request, options);
    return settle<Record<string, unknown>>(await this.call(script, contextId, record, options, args)).outcome;
  }

  /** The opId record of an operation: its key, and the fingerprint of the script's name and request. */
  private recordOf(script: LedgerScript, contextId: string, request: readonly unknown[], options: LedgerOptions): OpRecord {
    checkOpId(options.opId);
    return opRecord(this.keys, contextId, options.opId, [script, contextId, ...request, options.reason ?? null], this.config);
  }

  /** Runs a ledger script with the common KEYS and ARGV (lua/_2-ledger.lua) under `record`. */
  private async call(
    script: LedgerScript,
    contextId: string,
    record: OpRecord,
    options: LedgerOptions,
    args: readonly (string | number)[],
  ): Promise<ScriptReply> {
    const k = this.keys.context(contextId);
    const raw = await scriptsOf(this.redis)[script](
      k.meta,
      k.seq,
      k.feed,
      record.key,
      k.limits,
      k.policy,
      k.root,
      k.leases,
      k.allocs,
      record.fingerprint,
      contextId,
      this.keys.contextBase(contextId),
      options.actor,
      options.reason ?? "",
      this.config.feedRetention,
      record.ttlSeconds,
      this.keys.changesChannel,
      ...args,
    );
    return parseWriteReply(raw, record);
  }
}
