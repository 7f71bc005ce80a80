import { randomUUID } from "node:crypto";
import calculateSlot from "cluster-key-slot";
import { Cluster, type Redis } from "ioredis";
import type { RedisClient } from "./clients.js";
import { AppError, ErrorCode } from "../errors.js";
import { CLUSTER_SLOTS, EPOCH_REGISTRY_COPIES, type IndexKeys, type Keys } from "./keys.js";
import { scriptsOf } from "./scripts.js";

/** An epoch key's value once an instance has seen the state it names disappear. */
const LOST = "lost";
/** How an epoch written by `reinitialize` starts: every instance adopts it. */
const REINITIALIZED = "reinitialized:";
/** How long an operation waits for a reconnect's check before it is refused, in ms. */
const VERIFY_WAIT_MS = 2_000;

/** What the guard last concluded about Redis's state (on a cluster: about every slot it watches). */
export type StateStatus = "intact" | "unverified" | "lost";

/** The hash slots of one master of a Redis Cluster whose state is lost, as ranges. */
export interface LostShard {
  /** The master serving them, `host:port` as the cluster announces it. */
  readonly node: string;
  /** Inclusive ranges [first, last], ascending. */
  readonly slots: readonly (readonly [number, number])[];
}

/** What the guard reports as it goes. */
export interface StateEvents {
  /** The status changed; `lost` names the lost shards on a cluster (else empty). */
  changed(status: StateStatus, lost: readonly LostShard[]): void;
  /** One check (one epoch read; on a cluster, one batch of them) took `ms`: a sample of Redis latency. */
  roundTripMs(ms: number): void;
}

/** What the stores ask of the guard (the stores' own tests run them without one). */
export interface StateCheck {
  whenKeysIntact(keys: readonly string[]): Promise<void> | undefined;
}

/**
 * Whether `state` (when there is one) finds the units holding `keys` intact, after waiting for
 * their check if need be (at most VERIFY_WAIT_MS): for work that skips what it may not touch.
 */
export async function intact(state: StateCheck | undefined, keys: readonly string[]): Promise<boolean> {
  return Promise.resolve(state?.whenKeysIntact(keys)).then(
    () => true,
    () => false,
  );
}

/** The index shards whose keys `keysOf` picks are all intact (see intact), for a sweeper's pass. */
export async function intactShards(state: StateCheck | undefined, shards: readonly IndexKeys[], keysOf: (shard: IndexKeys) => readonly string[]): Promise<IndexKeys[]> {
  const found = await Promise.all(shards.map((shard) => intact(state, keysOf(shard))));
  return shards.filter((_, i) => found[i]);
}

/** What the guard knows of one unit of state: its status, and the epoch it last found intact. */
interface Unit {
  status: StateStatus;
  /** From then on, only this epoch or a re-initialisation is intact. */
  verified: string | undefined;
  /** On a cluster, the master that served the slot when it was judged. */
  node: string;
}

/** The slot epoch registry as one check read it (Keys.epochRegistry). */
interface Registry {
  /** Every copy, null where it could not be read; an absent copy reads as an empty buffer. */
  readonly copies: readonly (Buffer | null)[];
  /** The bits of every copy read, together: the slots known to have held state. */
  readonly known: Buffer;
}

/** Bytes of a bitmap of every hash slot. */
const BITMAP_BYTES = CLUSTER_SLOTS / 8;
const bitOf = (bitmap: Buffer, slot: number) => ((bitmap[slot >> 3] ?? 0) >> (7 - (slot & 7))) & 1;
const known = (registry: Registry, slot: number) => bitOf(registry.known, slot) === 1;
const complete = (registry: Registry) => registry.copies.every((copy) => copy !== null);

/** The slots whose bit is set in `bitmap`. */
function slotsIn(bitmap: Buffer): number[] {
  const slots: number[] = [];
  for (let byte = 0; byte < bitmap.length; byte++) {
    if (bitmap[byte] === 0) continue;
    for (let bit = 0; bit < 8; bit++) if ((bitmap[byte]! >> (7 - bit)) & 1) slots.push(byte * 8 + bit);
  }
  return slots;
}

/** A bitmap of every hash slot, with the bits of `slots` set. */
function bitmapOf(slots: Iterable<number>): Buffer {
  const bitmap = Buffer.alloc(BITMAP_BYTES);
  for (const slot of slots) bitmap[slot >> 3]! |= 1 << (7 - (slot & 7));
  return bitmap;
}

const noop = () => undefined;
/** The units of one Redis: its whole keyspace. */
const ONE_REDIS: readonly number[] = [0];

/**
 * Tells whether Redis still holds the state this deployment wrote, so that a Redis restarted
 * empty (or flushed) is refused rather than served from a blank ledger.
 *
 * The rule, per unit of state: the unit carries an epoch. An instance that finds neither an epoch
 * nor any sign of state (a new deployment) writes a random id, with SET NX so that of instances
 * starting together one id wins. Each instance remembers the epoch it verified and checks it
 * again after every reconnect and every `checkMs`: the same epoch is intact; a different one is
 * adopted only when `reinitialize` wrote it (its value starts `reinitialized:`) or the instance
 * had verified none yet. A missing epoch where state was seen, or a first-start epoch other than
 * the one verified (an instance started on the flushed keyspace and wrote it), means the state is
 * lost: the instance replaces the epoch with "lost" (unless it changed since it was read), so that
 * every instance, the one that wrote the new epoch included, refuses with UNAVAILABLE until an
 * admin calls `reinitialize`, whose epoch every instance adopts at its next check. Until a
 * reconnect's check is done, operations wait, at most VERIFY_WAIT_MS, and are then refused;
 * commands queued across the reconnect are ones already sent, which scripts keep safe.
 *
 * On one Redis the unit is the whole keyspace: its epoch is `<prefix>:epoch`, and "no sign of
 * state" means the contexts and feed indexes are absent. On a Redis Cluster a master can lose its
 * data while the others keep theirs, so the unit is the hash slot: slot s's epoch is
 * Keys.slotEpoch(s), in slot s, so that it moves and is lost with the swarms there (in the slot
 * of `<prefix>:epoch`, that key itself, so that the contexts list's cursors work as on one
 * Redis). A slot's epoch is written when an operation first touches the slot, after which its bit
 * is set in every copy of the registry (Keys.epochRegistry), which spreads over the masters: a
 * slot without an epoch is new only if no copy has its bit. Each instance checks the slots its
 * operations touch when they first do, the slots of a master after its connection drops, and
 * every `checkMs` every slot the registry knows (putting back bits a lost copy dropped). That
 * check reads, per master, the epoch of one of its intact slots and one of its lost slots (a
 * master loses its data all at once: restarted empty, flushed, or replaced by a replica that had
 * none), and every slot of the master when one of those changed; a slot that moved to another
 * master, and one unverified, is read on its own. An operation is refused only when a slot it
 * touches is lost or unverified.
 */
export class StateGuard implements StateCheck {
  private readonly units = new Map<number, Unit>();
  private status: StateStatus = "unverified";
  private timer: NodeJS.Timeout | undefined;
  /** Units asked to be checked by the next check, and whether it is a full one (see check). */
  private readonly asked = new Set<number>();
  private askedFull = false;
  /** The check running now, and the one that will run after it (for what was asked meanwhile). */
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  /** Operations waiting for the units they touch to be checked. */
  private readonly waiters = new Set<() => void>();
  private readonly cluster: Cluster | null;
  /** On a cluster, the slot whose epoch is `<prefix>:epoch`; on one Redis, the one unit (0). */
  private readonly home: number;

  private constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly events: StateEvents,
  ) {
    this.cluster = redis instanceof Cluster ? redis : null;
    this.home = this.unitOf(keys.epoch);
  }

  /**
   * Checks the state now (initialising the epoch of an empty keyspace; on a cluster, every slot
   * the registry knows, those of Keys.globalKeys and of `<prefix>:epoch`), then keeps watching
   * every `checkMs`. Rejects if Redis cannot be reached (on a cluster: not at all).
   */
  static async open(redis: RedisClient, keys: Keys, checkMs: number, events: StateEvents): Promise<StateGuard> {
    const guard = new StateGuard(redis, keys, events);
    // On a cluster a master may be down: its slots stay unverified, the others are served.
    await guard.request([guard.home, ...keys.globalKeys.map((key) => guard.unitOf(key))], true).catch((err: unknown) => {
      if (!guard.cluster) throw err;
    });
    redis.on("close", guard.onClose);
    redis.on("ready", guard.recheck);
    if (guard.cluster) {
      guard.cluster.on("-node", guard.onNodeGone);
      guard.cluster.on("+node", guard.onNodeAdded);
    }
    guard.timer = setInterval(guard.recheck, checkMs);
    return guard;
  }

  /** On one Redis, its state's status; on a cluster, "lost" if any slot is, else "unverified" if any slot is. */
  get current(): StateStatus {
    return this.status;
  }

  /**
   * Whether this instance should take traffic (/ready), Redis answering: on one Redis while its
   * state is intact; on a Redis Cluster always, since a lost or unreachable shard refuses only its
   * own swarms, and every instance sees the same shards.
   */
  get serving(): boolean {
    return this.cluster !== null || this.status === "intact";
  }

  /** On a Redis Cluster, the lost slots this instance knows of, by the master serving them; on one Redis, none. */
  lostShards(): LostShard[] {
    if (!this.cluster) return [];
    const byNode = new Map<string, number[]>();
    for (const [slot, unit] of this.units) {
      if (unit.status !== "lost") continue;
      const node = this.nodeOf(slot);
      const slots = byNode.get(node);
      if (slots) slots.push(slot);
      else byNode.set(node, [slot]);
    }
    return [...byNode]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([node, slots]) => {
        const ranges: [number, number][] = [];
        for (const slot of slots.sort((a, b) => a - b)) {
          const last = ranges.at(-1);
          if (last && last[1] === slot - 1) last[1] = slot;
          else ranges.push([slot, slot]);
        }
        return { node, slots: ranges };
      });
  }

  /**
   * Nothing when the units holding these contexts are intact (the common case costs no promise
   * and no Redis call); otherwise a promise that resolves once a check finds them intact, or
   * rejects with UNAVAILABLE when one is lost or stays unverified for VERIFY_WAIT_MS. On one
   * Redis, its one unit whatever the ids (none included); on a cluster, the slots of these ids.
   */
  whenIntact(contextIds: readonly string[] = []): Promise<void> | undefined {
    return this.whenUnitsIntact(this.cluster ? contextIds.map((id) => calculateSlot(this.keys.contextBase(id))) : ONE_REDIS);
  }

  /** As whenIntact, for the units holding these Redis keys (on one Redis, its one unit). */
  whenKeysIntact(keys: readonly string[]): Promise<void> | undefined {
    return this.whenUnitsIntact(this.cluster ? keys.map((key) => calculateSlot(key)) : ONE_REDIS);
  }

  private whenUnitsIntact(units: readonly number[]): Promise<void> | undefined {
    let pending = false;
    for (const u of units) {
      const status = this.units.get(u)?.status;
      if (status === "lost") return Promise.reject(this.unavailable(u));
      if (status !== "intact") pending = true;
    }
    if (!pending) return undefined;
    const unseen = units.filter((u) => !this.units.has(u));
    if (unseen.length > 0) this.request(unseen, false).catch(noop);
    return new Promise((resolve, reject) => {
      const settle = (final: boolean) => {
        const blocking = units.find((u) => this.units.get(u)?.status !== "intact");
        const lost = blocking !== undefined && this.units.get(blocking)?.status === "lost";
        if (blocking !== undefined && !lost && !final) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        if (blocking === undefined) resolve();
        else reject(this.unavailable(blocking));
      };
      const waiter = () => settle(false);
      const timer = setTimeout(() => settle(true), VERIFY_WAIT_MS);
      this.waiters.add(waiter);
    });
  }

  private unavailable(unit: number): AppError {
    const status = this.units.get(unit)?.status ?? "unverified";
    if (!this.cluster) {
      return new AppError(
        ErrorCode.UNAVAILABLE,
        status === "lost"
          ? "Redis lost this deployment's state (restarted empty or flushed); an admin must re-initialise it (README, Operations)"
          : "Redis is unreachable, not answering, or not yet verified after a reconnect; retry shortly",
        { state: status },
      );
    }
    const node = this.nodeOf(unit);
    return new AppError(
      ErrorCode.UNAVAILABLE,
      status === "lost"
        ? `the Redis Cluster master ${node} lost the state of hash slot ${unit} (restarted empty, flushed, or failed over to a replica without it); an admin must re-initialise it (docs/operations.md, Lost state)`
        : `hash slot ${unit} on the Redis Cluster master ${node} is unreachable, not answering, or not yet verified after a reconnect; retry shortly`,
      { state: status, slot: unit, node },
    );
  }

  /**
   * Declares the present Redis content the state of the lost units: a new epoch marked as
   * written here (`reinitialized:<id>`), which every instance adopts at its next check, ending
   * "lost" everywhere. What was lost stays lost. On a Redis Cluster, `node` (`host:port` of a
   * master) limits it to the slots that master serves; without it, every lost slot is. Throws
   * VALIDATION_FAILED when `node` is given on one Redis or names no master; rejects if Redis
   * cannot be reached.
   */
  async reinitialize(node: string | null = null): Promise<void> {
    const epoch = `${REINITIALIZED}${randomUUID()}`;
    if (!this.cluster) {
      if (node !== null) throw new AppError(ErrorCode.VALIDATION_FAILED, "node names a master of a Redis Cluster; this deployment runs on one Redis", { path: "node" });
      await this.redis.set(this.keys.epoch, epoch);
      // A check under way may have read the epoch before the SET: the one queued after it answers.
      await this.request([0], false);
      return;
    }
    const slots = node === null ? Array.from({ length: CLUSTER_SLOTS }, (_, slot) => slot) : this.slotsOf(node);
    const registry = await this.readRegistry();
    const epochs = await Promise.all(slots.map((slot) => this.redis.get(this.epochKey(slot))));
    const lost = slots.filter((slot, i) => epochs[i] === LOST || (epochs[i] === null && (known(registry, slot) || this.units.get(slot)?.verified !== undefined)));
    await Promise.all(lost.map((slot) => this.redis.set(this.epochKey(slot), epoch)));
    await this.remember(lost, registry);
    await this.request(lost, false);
  }

  /**
   * Checks every unit watched (on a cluster, with every slot the registry knows), putting back
   * registry bits a lost copy dropped. Concurrent callers share one check; rejects (after
   * recording what it could) if a read failed.
   */
  check(): Promise<void> {
    return this.request([], true);
  }

  /** Stops watching (before the Redis connection is closed on purpose). */
  close(): void {
    clearInterval(this.timer);
    this.redis.off("close", this.onClose);
    this.redis.off("ready", this.recheck);
    this.cluster?.off("-node", this.onNodeGone);
    this.cluster?.off("+node", this.onNodeAdded);
  }

  private readonly onClose = () => this.unverify([...this.units.keys()]);
  /**
   * A check that fails (Redis unreachable, or stalled past the command timeout while the
   * connection stays up) leaves what it could not read unverified until the next reconnect or tick.
   */
  private readonly recheck = () => void this.check().catch(noop);
  /** A master's connection dropped: its slots are unverified until a check reads them again. */
  private readonly onNodeGone = (node: Redis) => this.unverify(this.watchedOn(`${node.options.host}:${node.options.port}`));
  /** A connection to a master opened (again): once it is ready, a check reads its slots. */
  private readonly onNodeAdded = (node: Redis) => void node.once("ready", this.recheck);

  /** The unit holding `key`: its hash slot on a cluster, else 0. */
  private unitOf(key: string): number {
    return this.cluster ? calculateSlot(key) : 0;
  }

  private epochKey(unit: number): string {
    return unit === this.home ? this.keys.epoch : this.keys.slotEpoch(unit);
  }

  /** The master serving `slot` now, `host:port`. */
  private nodeOf(slot: number): string {
    return this.cluster?.slots[slot]?.[0] ?? "unknown";
  }

  private watchedOn(node: string): number[] {
    return [...this.units.keys()].filter((slot) => this.nodeOf(slot) === node);
  }

  private slotsOf(node: string): number[] {
    const slots = Array.from({ length: CLUSTER_SLOTS }, (_, slot) => slot).filter((slot) => this.nodeOf(slot) === node);
    if (slots.length === 0) {
      const masters = [...new Set(this.cluster!.slots.map((nodes) => nodes[0]))].sort().join(", ");
      throw new AppError(ErrorCode.VALIDATION_FAILED, `node must be a master of the Redis Cluster, as host:port: one of ${masters}`, { path: "node" });
    }
    return slots;
  }

  private unverify(units: readonly number[]): void {
    for (const u of units) this.units.get(u)!.status = "unverified";
    this.update();
  }

  /**
   * Runs a check of `units` (full: and of every unit watched) after the one running now, together
   * with what else is asked until it starts; resolves when it is done.
   */
  private request(units: Iterable<number>, full: boolean): Promise<void> {
    for (const u of units) this.asked.add(u);
    this.askedFull ||= full;
    this.queued ??= (this.running ?? Promise.resolve()).catch(noop).then(() => {
      const asked = [...this.asked];
      const askedFull = this.askedFull;
      this.asked.clear();
      this.askedFull = false;
      this.queued = undefined;
      this.running = this.run(asked, askedFull).finally(() => {
        this.running = undefined;
        this.update();
      });
      return this.running;
    });
    return this.queued;
  }

  /**
   * One check: reads the epochs of `asked` (full: and of what is watched, see the class comment;
   * on a cluster with the registry), writes those of new units, then judges each unit read.
   */
  private async run(asked: readonly number[], full: boolean): Promise<void> {
    const started = performance.now();
    const registry = full && this.cluster ? await this.readRegistry() : null;
    const toRead = new Set(asked);
    /** Per master and status, its slots of that status, the first one standing for all. */
    const groups = new Map<string, number[]>();
    if (full && !this.cluster) for (const u of this.units.keys()) toRead.add(u);
    if (registry) {
      for (const slot of slotsIn(registry.known)) if (!this.units.has(slot)) toRead.add(slot);
      for (const [u, unit] of this.units) {
        const node = this.nodeOf(u);
        if (unit.node !== node) toRead.add(u);
        else {
          const group = `${node} ${unit.status}`;
          const slots = groups.get(group);
          if (slots) slots.push(u);
          else groups.set(group, [u]);
        }
      }
      for (const [first] of groups.values()) toRead.add(first!);
    }
    const epochs = new Map<number, string | null>();
    let failure = await this.readEpochs([...toRead], epochs);
    // Every slot of a master is read when its standing slot changed, or, for its unverified slots,
    // once it answers again (while it does not, one failed read a check is enough).
    const changed = [...groups.values()].filter(([first]) => {
      const unit = this.units.get(first!)!;
      if (!epochs.has(first!)) return false;
      return unit.status === "unverified" || epochs.get(first!) !== (unit.status === "lost" ? LOST : unit.verified);
    });
    if (changed.length > 0) failure ??= await this.readEpochs(changed.flatMap((slots) => slots.slice(1)), epochs);
    this.events.roundTripMs(performance.now() - started);
    failure ??= await this.initialize(epochs, registry);
    const judged = await Promise.allSettled([...epochs].map(async ([u, epoch]) => this.units.set(u, await this.judge(u, epoch))));
    for (const outcome of judged) if (outcome.status === "rejected") failure ??= outcome.reason;
    // What could not be judged (unread, or its mark not written) is unverified until a later check.
    const judgedAt = new Set([...epochs.keys()].filter((_, i) => judged[i]!.status === "fulfilled"));
    const unreadGroups = [...groups.values()].filter(([first]) => !epochs.has(first!));
    for (const u of [...toRead, ...changed.flat(), ...unreadGroups.flat()]) {
      const unit = this.units.get(u);
      if (unit && !judgedAt.has(u)) unit.status = "unverified";
    }
    if (registry) await this.heal(registry);
    if (failure !== undefined) throw failure;
  }

  /** Reads the epochs of `units` into `epochs` (null: missing); one that cannot be read is left out. Resolves to the first failure. */
  private async readEpochs(units: readonly number[], epochs: Map<number, string | null>): Promise<unknown> {
    let failure: unknown;
    (await Promise.allSettled(units.map((u) => this.redis.get(this.epochKey(u))))).forEach((read, i) => {
      if (read.status === "fulfilled") epochs.set(units[i]!, read.value);
      else failure ??= read.reason;
    });
    return failure;
  }

  /**
   * Writes the epochs of the units read without one that are new (never verified here, and on a
   * cluster in no registry copy; on one Redis, an empty keyspace), into `epochs`. Those it cannot
   * tell apart from lost ones are taken out of `epochs`. Resolves to the failure, if any.
   */
  private async initialize(epochs: Map<number, string | null>, read: Registry | null): Promise<unknown> {
    const unseen = [...epochs].filter(([u, epoch]) => epoch === null && this.units.get(u)?.verified === undefined).map(([u]) => u);
    if (unseen.length === 0) return undefined;
    let registry = read;
    try {
      registry ??= this.cluster ? await this.readRegistry() : null;
      const fresh = registry ? unseen.filter((u) => !known(registry!, u)) : (await this.keyspaceEmpty()) ? unseen : [];
      // A slot no registry copy knows is new only if every copy could be read.
      if (registry && !complete(registry) && fresh.length > 0) throw new Error("the slot epoch registry could not be read whole");
      // A new deployment, or slots not used before. SET NX: of instances starting together, one
      // epoch wins; on a cluster, their bits go into every registry copy before they are served.
      await Promise.all(fresh.map((u) => this.redis.set(this.epochKey(u), randomUUID(), "NX")));
      const written = await Promise.all(fresh.map((u) => this.redis.get(this.epochKey(u))));
      if (registry) await this.remember(fresh, registry);
      fresh.forEach((u, i) => epochs.set(u, written[i]!));
      return undefined;
    } catch (err) {
      // Not judged: a missing epoch would be taken for lost state.
      for (const u of unseen) if (!registry || !known(registry, u)) epochs.delete(u);
      return err;
    }
  }

  /** What unit `u`'s epoch, just read (null: missing), says, marking it lost if need be. */
  private async judge(u: number, read: string | null): Promise<Unit> {
    const verified = this.units.get(u)?.verified;
    const node = this.nodeOf(u);
    let epoch = read;
    for (;;) {
      if (epoch === LOST) return { status: "lost", verified, node };
      if (epoch !== null && (verified === undefined || epoch === verified || epoch.startsWith(REINITIALIZED))) return { status: "intact", verified: epoch, node };
      // State was here and is gone: leave a mark that every instance, now or later, refuses on.
      epoch = await scriptsOf(this.redis).markEpochLost(this.epochKey(u), epoch ?? "", LOST);
    }
  }

  private async keyspaceEmpty(): Promise<boolean> {
    // One EXISTS per key: on a Redis Cluster they lie in different slots.
    const found = await Promise.all(this.keys.indexes.flatMap((ix) => [this.redis.exists(ix.contexts), this.redis.exists(ix.feeds)]));
    return found.every((n) => n === 0);
  }

  private async readRegistry(): Promise<Registry> {
    const reads = await Promise.allSettled(Array.from({ length: EPOCH_REGISTRY_COPIES }, (_, n) => this.redis.getBuffer(this.keys.epochRegistry(n))));
    const copies = reads.map((read) => (read.status === "fulfilled" ? (read.value ?? Buffer.alloc(0)) : null));
    const union = Buffer.alloc(BITMAP_BYTES);
    for (const copy of copies) for (let byte = 0; copy && byte < Math.min(copy.length, BITMAP_BYTES); byte++) union[byte]! |= copy[byte]!;
    return { copies, known: union };
  }

  /** Sets the bits of `slots` in every registry copy that lacks one of them as `registry` read it (or could not read it). */
  private async remember(slots: readonly number[], registry: Registry): Promise<void> {
    await Promise.all(registry.copies.map((copy, n) => this.setBits(n, slots.filter((slot) => copy === null || bitOf(copy, slot) === 0))));
  }

  /**
   * Puts back into the registry copies that were read the bits of every slot known here to have
   * had state: those a copy lost with its master. Best effort: the next full check tries again.
   */
  private async heal(registry: Registry): Promise<void> {
    const had = bitmapOf([...this.units].filter(([, unit]) => unit.verified !== undefined || unit.status === "lost").map(([slot]) => slot));
    const missingFrom = (copy: Buffer) => slotsIn(Buffer.from(had.map((bits, byte) => bits & ~(copy[byte] ?? 0))));
    await Promise.all(registry.copies.map((copy, n) => copy && this.setBits(n, missingFrom(copy)))).catch(noop);
  }

  /** One BITFIELD setting the bits of `slots` in registry copy `copy` (none: no command). */
  private async setBits(copy: number, slots: readonly number[]): Promise<void> {
    if (slots.length > 0) await this.redis.call("BITFIELD", this.keys.epochRegistry(copy), ...slots.flatMap((slot) => ["SET", "u1", slot, 1]));
  }

  /** Recomputes the status from the units, reports a change, and lets waiting operations look again. */
  private update(): void {
    let status: StateStatus = this.units.size === 0 ? "unverified" : "intact";
    for (const unit of this.units.values()) {
      if (unit.status === "lost") {
        status = "lost";
        break;
      }
      if (unit.status === "unverified") status = "unverified";
    }
    if (status !== this.status) {
      this.status = status;
      this.events.changed(status, this.lostShards());
    }
    for (const waiter of [...this.waiters]) waiter();
  }
}
