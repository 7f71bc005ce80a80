import type { ChainableCommander } from "ioredis";
import type { RedisClient } from "../redis/clients.js";
import { AppError, checkAll, ErrorCode, validationFailed, type Problem } from "../errors.js";
import type { Keys } from "../redis/keys.js";
import { scriptsOf, type LedgerScript } from "../redis/scripts.js";
import { intact, intactShards, type StateCheck } from "../redis/state-guard.js";
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
  const problems: Problem[] = [];
  const flat = amounts
    .map(({ kind, amount }) => {
      if (!RESOURCE_KIND.test(kind)) problems.push({ path, message: `resource kind ${JSON.stringify(kind)} must match ${RESOURCE_KIND.source}` });
      if (!Number.isSafeInteger(amount) || amount < 0) problems.push({ path, message: `amount of ${kind} must be a non-negative integer` });
      if (seen.has(kind)) problems.push({ path, message: `resource kind ${kind} is named twice` });
      seen.add(kind);
      return `${kind} ${amount}`;
    })
    .join(" ");
  if (problems.length > 0) throw validationFailed(problems);
  return flat;
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

/** What one step of ledger upkeep did (lua/expire-due-9.lua). */
export interface UpkeepStep {
  /** Something is still due: call again. */
  readonly more: boolean;
  /** When something next falls due (a lease or an ended allocation's retention), ms since the epoch, or null. */
  readonly nextDue: number | null;
  /** Allocations it ended. */
  readonly ended: number;
  /** Ended allocations it pruned. */
  readonly pruned: number;
}

/**
 * A page of allocations from one read index: a context's allocations of a status, tier and holder
 * (each absent = any), or with `parent` (an allocation number) that allocation's children of a
 * status (tier and holder then ignored).
 */
export interface PageRequest {
  readonly contextId: string;
  readonly parent?: string;
  readonly status?: AllocationStatus;
  readonly tier?: number;
  readonly holder?: string;
  /** The number the page starts after (exclusive); null: from the first. */
  readonly after: number | null;
  /** Rows at most (1 to 500, checked by the caller). */
  readonly first: number;
}

export interface Page {
  readonly allocations: Allocation[];
  readonly hasNextPage: boolean;
  /** The last number of the page's index range (the walk continues after it), or `after` for an empty page. */
  readonly endCursor: number | null;
}

/** Whether `a` (read after the index) still matches what its page request selects. */
function matches(a: Allocation, r: PageRequest): boolean {
  if (r.status !== undefined && a.status !== r.status) return false;
  if (r.parent !== undefined) return a.parentId === `${a.contextId}#${r.parent}`;
  return (r.tier === undefined || a.tier === r.tier) && (r.holder === undefined || a.holder === r.holder);
}

/** Runs a pipeline: its replies, or throws the first command's error. */
async function exec(pipeline: ChainableCommander): Promise<unknown[]> {
  const results = (await pipeline.exec()) ?? [];
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

/** An allocation from its hash (HGETALL), or null when there is none. */
function fromHash(contextId: string, n: string, h: Record<string, string>): Allocation | null {
  if (!h.status) return null;
  const kinds = h.kinds ? h.kinds.split(" ") : [];
  const list = (prefix: string) => kinds.map((kind) => ({ kind, amount: Number(h[prefix + kind] ?? 0) }));
  return toAllocation({
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
  });
}

/** How long a lease sweeper's claim on a context lasts (ms): should it stop mid-way, the context is due again then. */
const SWEEP_CLAIM_MS = 60_000;

/**
 * The resource ledger and locks of every context: each change is one Lua script that checks
 * the invariant (consumed + reserved <= granted at every node, per kind) before it writes, and
 * appends its feed entry. Reads go straight to the hashes.
 */
export class LedgerStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly config: {
      readonly feedRetention: number;
      readonly opIdTtlSeconds: number;
      readonly resendTtlSeconds: number;
      readonly endedAllocationRetentionMs: number;
    },
    /** As ContextStore's, for the sweeper. */
    private readonly state?: StateCheck,
  ) {}

  /** Grants an allocation; see allocate-9.lua for the rules and refusals. */
  async allocate(contextId: string, req: AllocateRequest, options: LedgerOptions): Promise<Allocation> {
    const parent = req.parentId == null ? "" : parseAllocationId(req.parentId);
    let request = "";
    checkAll(
      () => {
        if (parent !== "" && parent.contextId !== contextId) throw invalid("parentId", `allocation ${req.parentId} belongs to another context`);
      },
      () => {
        if (req.request == null && req.profile == null) throw invalid("request", "give request, profile, or both");
      },
      () => checkLease(req.leaseMs, "leaseMs"),
      () => checkHolder(req.holder),
      () => (request = flatAmounts(req.request ?? [], "request")),
    );
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
      await this.redis.zadd(this.keys.indexOf(contextId).due, "LT", 0, contextId);
      while ("pending" in reply) reply = await this.call("release", contextId, record, options, args);
    }
    const released = toAllocation(settle<{ allocation: RawAllocation }>(reply).outcome.allocation);
    // The sweeper prunes it (and any descendant this ended with it) once its retention runs out.
    if (released.endedAt !== null) {
      await this.redis.zadd(this.keys.indexOf(contextId).due, "LT", Date.parse(released.endedAt) + this.config.endedAllocationRetentionMs, contextId);
    }
    return released;
  }

  /** Sets an allocation's lease to end `leaseMs` from now. */
  async renew(allocationId: string, leaseMs: number, options: LedgerOptions): Promise<Allocation> {
    const { contextId, n } = parseAllocationId(allocationId);
    checkLease(leaseMs, "leaseMs");
    const reply = await this.run("renewAllocation", contextId, [allocationId, leaseMs], options, [n, leaseMs]);
    return this.indexLease(toAllocation((reply as { allocation: RawAllocation }).allocation));
  }

  async acquireLock(contextId: string, name: string, holder: string, leaseMs: number, options: LedgerOptions): Promise<Lock> {
    checkAll(
      () => checkLockName(name, "name"),
      () => checkHolder(holder),
      () => checkLease(leaseMs, "leaseMs"),
    );
    const reply = await this.run("acquireLock", contextId, [name, holder, leaseMs], options, [name, holder, leaseMs]);
    return toLock((reply as { lock: RawLock }).lock);
  }

  async renewLock(contextId: string, name: string, token: number, leaseMs: number, options: LedgerOptions): Promise<Lock> {
    checkAll(
      () => checkLockName(name, "name"),
      () => checkLease(leaseMs, "leaseMs"),
    );
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
   * Redis's clock), does the ledger's upkeep, a step (one script, lua/expire-due-9.lua) at a time
   * until nothing is due: ends overdue leases and releases left unfinished by their server, and
   * prunes ended allocations whose retention (endedAllocationRetentionMs) ran out. The contexts are
   * claimed first (lua/take-due-2.lua: other instances' sweepers pass them by), at most
   * maxContexts / indexShards (rounded up) from every index shard, claimed at once, and each is then
   * filed under when something next falls due (lua/settle-due-2.lua), keeping an earlier time a
   * writer filed meanwhile, such as a release's prune. Returns how many contexts it swept. Every
   * accepted ledger or lock operation also ends what is due first (a refused one writes nothing),
   * so this only bounds how long an allocation nobody changes shows ACTIVE past its lease.
   * Nothing is written where the state is lost or unverified (see StateGuard): shards whose lease
   * index is not intact are passed by, and a context whose state is not intact is left claimed.
   */
  async sweep(maxContexts = 200): Promise<number> {
    const shards = await intactShards(this.state, this.keys.indexes, (ix) => [ix.due]);
    if (shards.length === 0) return 0;
    const [seconds, micros] = await this.redis.time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const scripts = scriptsOf(this.redis);
    const share = Math.ceil(maxContexts / this.keys.indexShards);
    const due = (await Promise.all(shards.map((ix) => scripts.takeDue(ix.due, ix.claimed, now, now + SWEEP_CLAIM_MS, share)))).flat();
    const ready = await Promise.all(due.map((contextId) => intact(this.state, [this.keys.contextBase(contextId)])));
    for (const [i, contextId] of due.entries()) {
      // Its claim runs out, and it is due again, SWEEP_CLAIM_MS from now.
      if (!ready[i]) continue;
      const ix = this.keys.indexOf(contextId);
      let next: number | null = null;
      try {
        let step: UpkeepStep;
        do step = await this.upkeepStep(contextId);
        while (step.more);
        next = step.nextDue;
      } catch (err) {
        if (!(err instanceof AppError && err.code === ErrorCode.NOT_FOUND)) throw err;
      }
      await scripts.settleDue(ix.due, ix.claimed, contextId, next ?? "");
    }
    return due.length;
  }

  /**
   * One step of a context's ledger upkeep (lua/expire-due-9.lua): ends what is due, then prunes
   * ended allocations past retention, at most STEP (50) allocations in all. Throws NOT_FOUND for
   * a context that does not exist.
   */
  async upkeepStep(contextId: string): Promise<UpkeepStep> {
    return (await this.run("expireDue", contextId, [], { actor: "lease-sweeper" }, [this.config.endedAllocationRetentionMs])) as unknown as UpkeepStep;
  }

  /** Files the allocation's context under its expiry in the lease index if that is earlier. */
  private async indexLease(allocation: Allocation): Promise<Allocation> {
    if (allocation.expiresAt !== null) {
      await this.redis.zadd(this.keys.indexOf(allocation.contextId).due, "LT", Date.parse(allocation.expiresAt), allocation.contextId);
    }
    return allocation;
  }

  /** An allocation by id, or null (also once retention pruned it). */
  async allocation(allocationId: string): Promise<Allocation | null> {
    return (await this.allocationsById([allocationId]))[0] ?? null;
  }

  /**
   * Allocations by id, in one round trip whatever their number and context: null for an id that
   * does not parse or names no allocation (pruned included), and for every allocation of a
   * deleted context (they end with it, though their keys are removed in steps).
   */
  async allocationsById(ids: readonly string[]): Promise<(Allocation | null)[]> {
    const parsed = ids.map((id) => {
      try {
        return parseAllocationId(id);
      } catch {
        return null;
      }
    });
    const wanted = parsed.filter((p) => p !== null);
    if (wanted.length === 0) return parsed.map(() => null);
    const contextIds = [...new Set(wanted.map((p) => p.contextId))];
    const pipeline = wanted.reduce((p, { contextId, n }) => p.hgetall(this.keys.context(contextId).alloc(n)), this.redis.pipeline());
    for (const id of contextIds) pipeline.exists(this.keys.context(id).meta);
    const replies = await exec(pipeline);
    const live = new Set(contextIds.filter((_, i) => replies[wanted.length + i] === 1));
    let at = 0;
    return parsed.map((p) => {
      if (p === null) return null;
      const hash = replies[at++] as Record<string, string>;
      return live.has(p.contextId) ? fromHash(p.contextId, p.n, hash) : null;
    });
  }

  /**
   * Pages of allocations, each from the read index its request selects (keys.ts allocationIndex,
   * or childIndex with `parent`), oldest (lowest number) first after the number `after`: two
   * round trips for any number of requests, each reading its `first` + 1 index entries and the
   * page's hashes. A row whose hash no longer matches the request (its status changed, or
   * retention pruned it, between the two reads) is left out: it did not match for the whole walk.
   * `endCursor` is the last number of the page read from the index, so a walk goes on after it.
   */
  async allocationPages(requests: readonly PageRequest[]): Promise<Page[]> {
    if (requests.length === 0) return [];
    const ranges = await exec(
      requests.reduce(
        (p, r) => p.zrangebyscore(this.indexKey(r), r.after === null ? "-inf" : `(${r.after}`, "+inf", "LIMIT", 0, r.first + 1),
        this.redis.pipeline(),
      ),
    );
    const numbers = ranges.map((found, i) => (found as string[]).slice(0, requests[i]!.first));
    const hashes = await this.hashes(numbers.flatMap((ns, i) => ns.map((n) => ({ contextId: requests[i]!.contextId, n }))));
    let at = 0;
    return requests.map((r, i) => {
      const page = numbers[i]!;
      const allocations: Allocation[] = [];
      for (const n of page) {
        const a = fromHash(r.contextId, n, hashes[at++]!);
        if (a && matches(a, r)) allocations.push(a);
      }
      return {
        allocations,
        hasNextPage: (ranges[i] as string[]).length > r.first,
        endCursor: page.length > 0 ? Number(page[page.length - 1]) : r.after,
      };
    });
  }

  /** How many allocations each request's read index holds (its `after` and `first` aside), in one round trip. */
  async allocationCounts(requests: readonly Omit<PageRequest, "after" | "first">[]): Promise<number[]> {
    if (requests.length === 0) return [];
    return (await exec(requests.reduce((p, r) => p.zcard(this.indexKey(r)), this.redis.pipeline()))) as number[];
  }

  /** Active allocations of a context (one ZCARD). */
  async activeAllocations(contextId: string): Promise<number> {
    return this.redis.zcard(this.keys.context(contextId).allocationIndex({ status: "ACTIVE" }));
  }

  /**
   * Locks of a context that no operation has released (one SCARD, no lock read): the held ones,
   * and ones whose lease ran out that no lock operation on that name has cleaned up yet.
   */
  async heldLocks(contextId: string): Promise<number> {
    return this.redis.scard(this.keys.context(contextId).locks);
  }

  private indexKey(r: Omit<PageRequest, "after" | "first">): string {
    const k = this.keys.context(r.contextId);
    return r.parent !== undefined
      ? k.childIndex(r.parent, r.status)
      : k.allocationIndex({ status: r.status, tier: r.tier, holder: r.holder });
  }

  /** The hashes of allocations, in one round trip. */
  private async hashes(of: readonly { contextId: string; n: string }[]): Promise<Record<string, string>[]> {
    if (of.length === 0) return [];
    return (await exec(of.reduce((p, { contextId, n }) => p.hgetall(this.keys.context(contextId).alloc(n)), this.redis.pipeline()))) as Record<
      string,
      string
    >[];
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
