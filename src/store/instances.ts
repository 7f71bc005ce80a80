import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import type { RedisClient } from "../redis/clients.js";
import type { Keys } from "../redis/keys.js";
import { scriptsOf } from "../redis/scripts.js";
import { intact, type StateCheck } from "../redis/state-guard.js";
import { PeriodicPass } from "./periodic-pass.js";

/** A running server instance as its last heartbeat recorded it. */
export interface ServerInstance {
  readonly id: string;
  /** The server's package version. */
  readonly version: string;
  readonly startedAt: string;
  /** When its last heartbeat was written (Redis time), ISO 8601. */
  readonly heartbeat: string;
  /** Feed subscriptions open on it at its last heartbeat. */
  readonly subscriptions: number;
}

/** Instances one read returns at most. */
export const MAX_INSTANCES = 1000;

export interface HeartbeatSettings {
  /** How often the heartbeat is written, ms. */
  readonly heartbeatMs: number;
  /** How long one counts (its key's TTL), ms. */
  readonly heartbeatTtlMs: number;
}

/**
 * This instance's heartbeat: written at once and then `heartbeatMs` after the previous one ended
 * (one at a time however long Redis takes), each one a script (lua/heartbeat-2.lua) that sets the
 * instance's hash with a TTL of `heartbeatTtlMs` and its entry in the instances index, and prunes
 * the index of instances whose heartbeat ran out. A killed instance thus leaves within the TTL;
 * a stopped one (stop()) at once. No beat is written unless `state` finds the instances' keys
 * intact: state that is lost or unverified gets nothing written into it (docs/operations.md,
 * Lost state). Beats run as a PeriodicPass: a failed one is reported as its failures are.
 */
export class Heartbeat {
  readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  readonly startedAt = new Date().toISOString();
  private beats: PeriodicPass | null = null;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly settings: HeartbeatSettings,
    private readonly version: string,
    private readonly subscriptions: () => number,
    private readonly state: StateCheck,
    private readonly report: (err: unknown) => void,
  ) {}

  /** Writes the first heartbeat and starts the timer; resolves when the first one was answered (or failed). */
  start(): Promise<void> {
    this.beats = new PeriodicPass(() => this.send("beat"), this.settings.heartbeatMs, this.report, true);
    return this.beats.settled();
  }

  /** Stops the timer and removes this instance from serverInstances (after a beat in flight). */
  async stop(): Promise<void> {
    await this.beats?.stop();
    await this.send("stop");
  }

  private async send(mode: "beat" | "stop"): Promise<void> {
    if (!(await intact(this.state, [this.keys.instanceIndex]))) return;
    await scriptsOf(this.redis).heartbeat(
      this.keys.instance(this.id),
      this.keys.instanceIndex,
      this.id,
      this.version,
      this.startedAt,
      this.subscriptions(),
      this.settings.heartbeatTtlMs,
      mode,
    );
  }
}

/**
 * The running server instances, oldest start first: those whose heartbeat is at most `ttlMs` old
 * by Redis's clock, at most MAX_INSTANCES. Reads the index (one ZRANGEBYSCORE) and each
 * instance's hash (pipelined); an instance whose hash expired meanwhile is left out.
 */
export async function readInstances(redis: RedisClient, keys: Keys, ttlMs: number): Promise<ServerInstance[]> {
  const [seconds, micros] = await redis.time();
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  const ids = await redis.zrangebyscore(keys.instanceIndex, now - ttlMs, "+inf", "LIMIT", 0, MAX_INSTANCES);
  const hashes = await Promise.all(ids.map((id) => redis.hgetall(keys.instance(id))));
  return hashes
    .filter((h) => h.id !== undefined)
    .map((h) => ({
      id: h.id!,
      version: h.version!,
      startedAt: h.startedAt!,
      heartbeat: new Date(Number(h.heartbeat)).toISOString(),
      subscriptions: Number(h.subscriptions),
    }))
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
}
