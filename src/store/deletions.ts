import type { RedisClient } from "../redis/clients.js";
import type { Keys } from "../redis/keys.js";
import { scriptsOf } from "../redis/scripts.js";
import { intact, intactShards, type StateCheck } from "../redis/state-guard.js";

/** What purge-step-2.lua answers. */
type PurgeReply = { pending: true } | { raise: number } | { wait: number } | { done: true; gone: boolean };

/** What is next for a deleted context once the steps that could run now have: the prune at `wait` (ms), or nothing. */
export type PurgeOutcome = { readonly wait: number } | { readonly done: true; readonly gone: boolean };

/**
 * How long a deletion's server has to purge the context before the sweeper takes over, in ms: a
 * server that is alive finishes well within it, back to back, and the two would only duplicate work.
 */
export const PURGE_GRACE_MS = 10_000;

/** Deleted contexts the sweeper looks at per pass, at most. */
const SWEEP_BATCH = 200;

/**
 * What is left of deleted contexts, removed in bounded steps (one purge-step-2.lua call each):
 * first the ledger's keys (the purge, right after the deletion, by its server or else by the
 * sweeper), then, once the deleted-context retention has passed since counterFloor covered the
 * context's last seq, its feed and counters (the prune, by the sweeper) and its entries in the
 * contexts and feed indexes. Each deleted id is filed in its index shard's `deleted` index (keys.ts
 * IndexKeys) under when to look next, and raises that shard's counterFloor: a create of the id,
 * which always falls in the same shard, reads that floor.
 */
export class Deletions {
  /** `state`: as ContextStore's, for the sweeper. */
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly config: { readonly deletedContextRetentionMs: number },
    private readonly state?: StateCheck,
  ) {}

  /** Files `id` for the sweeper PURGE_GRACE_MS from now: it finishes the purge if this server stops first. */
  async fileForPurge(id: string): Promise<void> {
    await this.redis.zadd(this.keys.indexOf(id).deleted, Date.now() + PURGE_GRACE_MS, id);
  }

  /** After a deletion: purges the context's ledger back to back, raises the floor, and files the prune. */
  async purge(id: string): Promise<void> {
    await this.file(id, await this.advance(id, false));
  }

  /**
   * When a create of `id` found what a deletion left that would mix into the new context (a purge,
   * or a prune already begun): finishes it. A prune not begun is left alone: the counters go on.
   */
  async finish(id: string): Promise<void> {
    await this.advance(id, false);
  }

  /** The counter floor of the index shard of `id` and when it was read (ms, Redis time), for create-context-7.lua. */
  async floor(id: string): Promise<{ readonly floor: number; readonly readAtMs: number }> {
    const replies = (await this.redis.multi().get(this.keys.indexOf(id).counterFloor).time().exec())!;
    for (const [err] of replies) if (err) throw err;
    const [[, floor], [, [seconds, micros]]] = replies as [[null, string | null], [null, [string, string]]];
    return { floor: Number(floor ?? 0), readAtMs: Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) };
  }

  /**
   * One pass of the deletion sweeper: the deleted contexts that are due (by Redis's clock), at
   * most maxContexts / indexShards (rounded up) from every index shard, read at once, are each
   * taken as far as they can go now, a step at a time: an unfinished purge, the floor's raise, a
   * due prune. Then each is filed under when its prune is due, or leaves the index. Nothing is
   * written where the state is lost or unverified (see StateGuard): shards whose index and
   * counter floor are not intact are passed by, and a context whose state is not intact is filed
   * again PURGE_GRACE_MS later. Returns how many it looked at.
   */
  async sweep(maxContexts = SWEEP_BATCH): Promise<number> {
    const shards = await intactShards(this.state, this.keys.indexes, (ix) => [ix.deleted, ix.counterFloor]);
    if (shards.length === 0) return 0;
    const [seconds, micros] = await this.redis.time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const share = Math.ceil(maxContexts / this.keys.indexShards);
    const due = (await Promise.all(shards.map((ix) => this.redis.zrangebyscore(ix.deleted, "-inf", now, "LIMIT", 0, share)))).flat();
    const ready = await Promise.all(due.map((id) => intact(this.state, [this.keys.contextBase(id)])));
    for (const [i, id] of due.entries()) {
      if (ready[i]) await this.file(id, await this.advance(id, true));
      else await this.redis.zadd(this.keys.indexOf(id).deleted, now + PURGE_GRACE_MS, id);
    }
    return due.length;
  }

  /** Runs purge steps for `id` until one answers other than pending, raising the floor when asked. */
  private async advance(id: string, mayPrune: boolean): Promise<PurgeOutcome> {
    const k = this.keys.context(id);
    const scripts = scriptsOf(this.redis);
    let floorReached: number | "" = "";
    for (;;) {
      const reply = JSON.parse(
        await scripts.purgeStep(k.meta, k.tombstone, this.keys.contextBase(id), this.config.deletedContextRetentionMs, mayPrune ? "1" : "0", floorReached),
      ) as PurgeReply;
      if ("pending" in reply) continue;
      if ("raise" in reply) {
        floorReached = Number(await scripts.raiseFloor(this.keys.indexOf(id).counterFloor, reply.raise));
        continue;
      }
      return reply;
    }
  }

  /**
   * Files `id` under when its prune is due, or, with nothing left, takes it out of the deleted
   * index and, once its feed is pruned, out of the contexts, feed and lease indexes. Each removal is
   * checked after: an id created again meanwhile goes back (into the contexts index if it exists, the
   * feed index if it has a feed), and one deleted again (a tombstone) back into the deleted index.
   */
  private async file(id: string, outcome: PurgeOutcome): Promise<void> {
    const ix = this.keys.indexOf(id);
    if ("wait" in outcome) {
      await this.redis.zadd(ix.deleted, outcome.wait, id);
      return;
    }
    const k = this.keys.context(id);
    if (outcome.gone) {
      await Promise.all([this.redis.zrem(ix.contexts, id), this.redis.zrem(ix.feeds, id), this.redis.zrem(ix.due, id)]);
      const [meta, seq] = await Promise.all([this.redis.exists(k.meta), this.redis.exists(k.seq)]);
      // A context created meanwhile is filed as due in the lease index: the sweeper files it anew.
      if (meta === 1) await Promise.all([this.redis.zadd(ix.contexts, 0, id), this.redis.zadd(ix.due, "LT", 0, id)]);
      if (seq === 1) await this.redis.zadd(ix.feeds, 0, id);
    }
    await this.redis.zrem(ix.deleted, id);
    if ((await this.redis.exists(k.tombstone)) === 1) await this.redis.zadd(ix.deleted, 0, id);
  }
}
