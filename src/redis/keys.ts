import calculateSlot from "cluster-key-slot";
import type { AllocationStatus } from "../model/allocation.js";

/**
 * The only place Redis key and channel strings are built. Every key of one swarm carries the hash
 * tag `{ctx:<id>}`, so each script touches one Cluster slot; the prefix isolates deployments/tests.
 * The ledger scripts build the per-allocation and per-lock names below from the key base
 * (contextBase) in Lua, as lua/_2-ledger.lua lays them out; both spell them alike.
 */
export interface ContextKeys {
  /** Hash: doc, version, createdAt, updatedAt, updatedBy, oldestSnapshot. */
  readonly meta: string;
  /**
   * Counter: last seq of the change feed. It outlives deletion for the deleted-context retention,
   * so that a context created again within it continues the seqs; after that it is pruned and a
   * new context of the id starts above its index shard's counterFloor (IndexKeys).
   */
  readonly seq: string;
  /** Hash: version -> document JSON, the retained history. */
  readonly snapshots: string;
  /** Stream: the change feed, entry id `<seq>-0`. */
  readonly feed: string;
  /** Hash: `resources.limits`, kind -> amount, written with the document. */
  readonly limits: string;
  /** Hash: `policy.allocation` numbers and profiles, written with the document. */
  readonly policy: string;
  /** Hash: the budget's c:<kind> (consumed) and r:<kind> (reserved by its allocations). */
  readonly root: string;
  /** Sorted set: active leased allocation numbers by expiry (ms). */
  readonly leases: string;
  /** Sorted set: every allocation number, active or ended. */
  readonly allocs: string;
  /**
   * Sorted set: ended (RELEASED or EXPIRED) allocation numbers by endedAt (ms), what retention
   * prunes (SWARM_ENDED_ALLOCATION_RETENTION_MS).
   */
  readonly ended: string;
  /** Set: names of the locks held (or whose lease ran out but was not yet released). */
  readonly locks: string;
  /**
   * Set of every read index key the ledger scripts have created for this context (the keys of
   * allocationIndex and childIndex), so that deleting the context finds them all.
   */
  readonly indexes: string;
  /** Counter of allocation numbers; kept and pruned with `seq`. */
  readonly allocCount: string;
  /** Set of the lock names that have a token counter (lockToken), so that the prune finds them. */
  readonly lockNames: string;
  /**
   * Hash, while a deleted context has leftovers: seq (of its DELETED entry), deletedAt (ms),
   * purge ('1' while its ledger keys and read indexes are still being removed, in steps),
   * raisedAt (ms: when counterFloor was seen at or above seq, half a retention after the
   * deletion) and pruning ('1' once the prune of its feed and counters, half a retention after
   * that, began). Written by lua/delete-context-7.lua, read and ended by
   * lua/purge-step-2.lua, removed by a create of the id.
   */
  readonly tombstone: string;
  /** Hash of allocation `n` (fields: lua/_2-ledger.lua). */
  alloc(n: string): string;
  /**
   * Sorted set of the numbers (score: the number) of the allocations that match `filter`
   * (status, tier, holder; each absent = any): a read index kept by the ledger scripts, which
   * spell the same names in Lua (lua/_2-ledger.lua).
   */
  allocationIndex(filter: AllocationFilter): string;
  /** Sorted set of the numbers of the children of allocation `parent` ('' = the budget), of one status or (absent) any. */
  childIndex(parent: string, status?: AllocationStatus): string;
  /** Hash of the lock `name`: holder, token, expiresAt. */
  lock(name: string): string;
  /** Counter of the fencing tokens of lock `name`: only grows while the context's counters are kept. */
  lockToken(name: string): string;
}

/** What an allocation index selects; an absent field matches any value. */
export interface AllocationFilter {
  readonly status?: AllocationStatus;
  readonly tier?: number;
  readonly holder?: string;
}

/** Copies of the slot epoch registry (Keys.epochRegistry). */
export const EPOCH_REGISTRY_COPIES = 16;

/** Hash slots of a Redis Cluster. */
export const CLUSTER_SLOTS = 16384;

let slotTags: string[] | undefined;

/**
 * A hash tag whose hash slot is `slot`: `ep:<n>`, n the least number (base 36) that hashes there.
 * The table of all 16,384 is found on first use (about 81,000 tries, tens of ms) and kept.
 */
function slotTag(slot: number): string {
  if (!slotTags) {
    const tags: string[] = new Array<string>(CLUSTER_SLOTS).fill("");
    for (let n = 0, left = CLUSTER_SLOTS; left > 0; n++) {
      const tag = `ep:${n.toString(36)}`;
      const at = calculateSlot(tag);
      if (tags[at] === "") {
        tags[at] = tag;
        left--;
      }
    }
    slotTags = tags;
  }
  return slotTags[slot]!;
}

/**
 * The deployment-wide indexes of one shard. They lie outside the contexts' slots (no script can
 * write them with a context), so Node writes them around the scripts and each is a hint, a
 * superset or a schedule, never the truth: that is each context's own keys. On a Redis Cluster
 * they are split into shards, each under its own hash tag, so that no command spans slots and
 * no single slot takes every swarm's index writes; lists merge the shards (store/contexts.ts).
 */
export interface IndexKeys {
  /** Sorted set of context ids (all scores 0, ordered by id); a superset, see store/contexts. */
  readonly contexts: string;
  /**
   * Sorted set of context ids by their meta's updatedAt (score: ms since the epoch), for listing
   * newest first. Node writes it around the document scripts (store/contexts.ts indexUpdate).
   */
  readonly byUpdate: string;
  /**
   * Sorted set of every context id that has a feed (all scores 0, ordered by id), added before a
   * context's first change and removed only when a deleted context's feed is pruned (after the
   * deleted-context retention): where feed subscribers find the ids of a prefix.
   */
  readonly feeds: string;
  /**
   * Sorted set of deleted context ids by when the deletion sweeper should look at them next (ms):
   * to finish a purge whose server stopped, raise counterFloor if that was not recorded, and prune
   * the feed and counters once the retention has passed. The context's tombstone says what is left.
   */
  readonly deleted: string;
  /**
   * Counter: at least the last seq of every deleted context of this shard whose feed is pruned or
   * about to be (0 until one is). Every allocation number and lock token of a context is at most
   * its seq, so a context created where no seq counter is left starts its seq, allocation numbers
   * and lock tokens above it.
   */
  readonly counterFloor: string;
  /**
   * Sorted set of context ids by when their ledger upkeep is next due (ms): a lease running out, a
   * release to finish, an ended allocation to prune. Only a hint: every accepted ledger operation
   * expires overdue leases on its own. While a lease sweeper works on a context, the context is in
   * `claimed` instead (lua/take-due-2.lua).
   */
  readonly due: string;
  /** Sorted set of the context ids lease sweepers are working on, by when each claim runs out (ms); shares `due`'s hash tag. */
  readonly claimed: string;
}

/** Index shards on a Redis Cluster (keys.ts IndexKeys): enough to spread over many masters, few enough that a list reads them all. */
export const CLUSTER_INDEX_SHARDS = 16;

export class Keys {
  /**
   * `indexShards`: how many shards the deployment-wide indexes are split into: 1 on one Redis,
   * CLUSTER_INDEX_SHARDS on a cluster. It must not change while the deployment's data is kept.
   */
  constructor(
    readonly prefix: string,
    readonly indexShards = 1,
  ) {}

  /**
   * The start of every key of one context, `<prefix>:{ctx:<id>}`: scripts that take it build the
   * keys of the context's allocations and locks from it (lua/_2-ledger.lua), after checking that
   * it carries the hash tag of their first declared key.
   */
  contextBase(id: string): string {
    return `${this.prefix}:{ctx:${id}}`;
  }

  context(id: string): ContextKeys {
    const base = this.contextBase(id);
    return {
      meta: `${base}:meta`,
      seq: `${base}:seq`,
      snapshots: `${base}:snapshots`,
      feed: `${base}:feed`,
      limits: `${base}:limits`,
      policy: `${base}:policy`,
      root: `${base}:root`,
      leases: `${base}:leases`,
      allocs: `${base}:allocs`,
      ended: `${base}:ended`,
      locks: `${base}:locks`,
      indexes: `${base}:indexes`,
      allocCount: `${base}:allocCount`,
      lockNames: `${base}:lockNames`,
      tombstone: `${base}:tomb`,
      alloc: (n) => `${base}:alloc:${n}`,
      allocationIndex: ({ status, tier, holder }) =>
        `${base}:ix:${status ?? "*"}:${tier ?? "*"}:${holder === undefined ? "*" : `h=${holder}`}`,
      childIndex: (parent, status) => `${base}:kids:${parent === "" ? "root" : parent}:${status ?? "*"}`,
      lock: (name) => `${base}:lock:${name}`,
      lockToken: (name) => `${base}:lockToken:${name}`,
    };
  }

  /** Outcome of one opId on one context (hash: fingerprint, reply), expiring after the opId TTL. */
  op(contextId: string, opId: string): string {
    return `${this.contextBase(contextId)}:op:${opId}`;
  }

  /**
   * Outcome of one script call sent without an opId (hash: fingerprint '', reply), named by an id
   * the server generated, expiring after the resend TTL: what a resend by the Redis client finds.
   */
  resend(contextId: string, generatedId: string): string {
    return `${this.contextBase(contextId)}:resend:${generatedId}`;
  }

  /**
   * The deployment-wide indexes of one shard (0 to indexShards - 1); each context is filed in the
   * shard shardOf(its id). With one shard (one Redis) the keys keep their unsharded names.
   */
  index(shard: number): IndexKeys {
    if (this.indexShards === 1) {
      return {
        contexts: `${this.prefix}:contexts`,
        byUpdate: `${this.prefix}:contextsByUpdate`,
        feeds: `${this.prefix}:feedIndex`,
        deleted: `${this.prefix}:deletedIndex`,
        counterFloor: `${this.prefix}:counterFloor`,
        due: `${this.prefix}:{upkeep}:due`,
        claimed: `${this.prefix}:{upkeep}:claimed`,
      };
    }
    const base = `${this.prefix}:{ix:${shard}}`;
    return {
      contexts: `${base}:contexts`,
      byUpdate: `${base}:byUpdate`,
      feeds: `${base}:feeds`,
      deleted: `${base}:deleted`,
      counterFloor: `${base}:counterFloor`,
      due: `${base}:due`,
      claimed: `${base}:claimed`,
    };
  }

  /** The indexes of the shard that files `contextId`. */
  indexOf(contextId: string): IndexKeys {
    return this.index(this.shardOf(contextId));
  }

  /** Every shard's indexes, shard 0 first. */
  get indexes(): readonly IndexKeys[] {
    return Array.from({ length: this.indexShards }, (_, shard) => this.index(shard));
  }

  /** The index shard of `contextId`: FNV-1a of its UTF-16 code units, modulo indexShards. */
  shardOf(contextId: string): number {
    if (this.indexShards === 1) return 0;
    let hash = 0x811c9dc5;
    for (let i = 0; i < contextId.length; i++) hash = Math.imul(hash ^ contextId.charCodeAt(i), 0x01000193);
    return (hash >>> 0) % this.indexShards;
  }

  /**
   * Sorted set of running server instance ids by their last heartbeat (ms, Redis time); entries
   * older than the heartbeat TTL are pruned by every heartbeat and read. Shares its hash tag with
   * instance(), so one script writes both.
   */
  get instanceIndex(): string {
    return `${this.prefix}:{instances}`;
  }

  /** Hash of one running server instance (id, version, startedAt, heartbeat, subscriptions), expiring after the heartbeat TTL. */
  instance(id: string): string {
    return `${this.prefix}:{instances}:${id}`;
  }

  /**
   * The keys of state outside every context's slot (every shard's deployment-wide indexes and
   * counter floor, the server instances' heartbeats): the state guard watches the units holding
   * them from its start, so that on a Redis Cluster their slots are never taken for new once they
   * hold state. (Each shard's `claimed` shares its `due`'s slot.)
   */
  get globalKeys(): readonly string[] {
    return [...this.indexes.flatMap((index) => [index.contexts, index.byUpdate, index.feeds, index.deleted, index.counterFloor, index.due]), this.instanceIndex];
  }

  /**
   * String: the deployment's epoch, a random id written when an empty keyspace is first used, or
   * "lost" once an instance saw it disappear (see state-guard.ts). On a Redis Cluster it is the
   * epoch of the hash slot it hashes to, in place of that slot's slotEpoch.
   */
  get epoch(): string {
    return `${this.prefix}:epoch`;
  }

  /**
   * String: on a Redis Cluster, the epoch of hash slot `slot` (0 to 16383), as `epoch` is the
   * deployment's on one Redis (state-guard.ts). Its hash tag is one whose slot is `slot`, so it
   * lives, moves and is lost with the keys of the swarms in that slot.
   */
  slotEpoch(slot: number): string {
    return `${this.prefix}:{${slotTag(slot)}}:epoch`;
  }

  /**
   * Bitmap, on a Redis Cluster: bit s is set once hash slot s has an epoch (state-guard.ts). It is
   * kept in EPOCH_REGISTRY_COPIES copies (0 to 15) under hash tags of their own, which spread them
   * over the masters: a slot with no epoch whose bit any copy has lost its state; one whose bit
   * no copy has is new.
   */
  epochRegistry(copy: number): string {
    return `${this.prefix}:{epochs:${copy}}`;
  }

  /** Hash of one API key's current rate window: start (Redis ms) and count of admitted requests; expires with the window (lua/rate-lease-1.lua). */
  rate(keyName: string): string {
    return `${this.prefix}:rate:${keyName}`;
  }

  /** Pub/sub channel that wakes feed readers: message `<contextId> <seq> <entry as JSON>`, or `<contextId> <seq>` for a large entry (feed/feed-hub.ts). */
  get changesChannel(): string {
    return `${this.prefix}:changes`;
  }

  /**
   * Pub/sub channel of live ledger refusal notices (feed/refusal-notices.ts): message
   * `<contextId> <notice JSON>`. Notices are not kept anywhere: a subscriber sees those published
   * while it listens.
   */
  get refusalsChannel(): string {
    return `${this.prefix}:refusals`;
  }
}
