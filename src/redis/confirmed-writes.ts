import calculateSlot from "cluster-key-slot";
import { Cluster, type Redis } from "ioredis";
import { AppError, ErrorCode } from "../errors.js";

/** How writes are confirmed before they are acknowledged: by `WAIT replicas timeoutMs` on their master. */
export interface WriteConfirmation {
  /** Replicas that must have acknowledged a write; at least 1. */
  readonly replicas: number;
  /** How long WAIT waits for them, in ms; at least 1 (0 would wait forever). */
  readonly timeoutMs: number;
}

/** A script as EVALSHA and EVAL send it. */
export interface WriteScript {
  readonly lua: string;
  readonly sha: string;
  readonly numberOfKeys: number;
}

interface Write {
  readonly script: WriteScript;
  readonly keysAndArgs: readonly (string | number)[];
  /** False once Redis answered NOSCRIPT: it goes as EVAL then. */
  readonly known: boolean;
  resolve(reply: unknown): void;
  reject(err: unknown): void;
}

/** Writes bound for one master: those waiting for the next batch, and whether a batch is out. */
interface Group {
  readonly waiting: Write[];
  sending: boolean;
}

/** What ioredis rejects a cluster pipeline with when its commands' slots are no longer served by one node. */
const SPLIT_PIPELINE = "All keys in the pipeline should belong to the same slots allocation group";

/**
 * Write scripts confirmed by replicas before they resolve, a batch at a time per master (group
 * commit): the writes sent while a batch is out go together in the next one, as one pipeline of
 * the scripts followed by one WAIT. ioredis sends a pipeline on one connection, on a cluster the
 * one to the master of its keys' slots, and WAIT answers for the writes of its own connection, so
 * it covers every script of the batch. One WAIT per batch, and one batch out per master at a
 * time, because WAIT blocks its connection: the commands queued behind it (reads, other swarms'
 * writes) wait for at most one WAIT, however many writes there are, even when the replicas are
 * gone and each WAIT runs to its timeout. Batches are sent in order and pipelines are not mixed
 * with auto-pipelined commands, so the writes to one master keep the order they were sent in.
 */
export class ConfirmedWrites {
  private readonly groups = new Map<string, Group>();

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly confirmation: WriteConfirmation,
  ) {}

  /**
   * Runs `script` (its first key routes it) and resolves with its reply once enough replicas
   * have it. Rejects with the script's error; with UNAVAILABLE when fewer replicas than required
   * confirmed it within the timeout (it stands on the master); with the connection's or the
   * cluster's error (MOVED and the like: ioredis does not follow them in a pipeline in which
   * another command succeeded) otherwise.
   */
  run(script: WriteScript, keysAndArgs: readonly (string | number)[]): Promise<unknown> {
    return new Promise((resolve, reject) => this.enqueue({ script, keysAndArgs, known: true, resolve, reject }));
  }

  /** Adds `write` to the next batch of its master: last, or `first` (a write sent again, ahead of later ones). */
  private enqueue(write: Write, first = false): void {
    const key = this.groupOf(String(write.keysAndArgs[0]));
    let group = this.groups.get(key);
    if (!group) this.groups.set(key, (group = { waiting: [], sending: false }));
    if (first) group.waiting.unshift(write);
    else group.waiting.push(write);
    // After the I/O callbacks of this turn, as ioredis's auto-pipelining does: the writes they send join the batch.
    if (!group.sending && group.waiting.length === 1) setImmediate(() => void this.send(key));
  }

  /** On a cluster, the nodes that serve the key's slot as the client knows them (how ioredis groups a pipeline); one group until they are known. */
  private groupOf(key: string): string {
    return this.redis instanceof Cluster ? (this.redis.slots[calculateSlot(key)]?.join(",") ?? "") : "";
  }

  private async send(key: string): Promise<void> {
    const group = this.groups.get(key);
    if (!group || group.sending || group.waiting.length === 0) return;
    const batch = group.waiting.splice(0);
    group.sending = true;
    try {
      await this.confirm(batch);
    } finally {
      group.sending = false;
      if (group.waiting.length > 0) void this.send(key);
      else this.groups.delete(key);
    }
  }

  private async confirm(batch: readonly Write[]): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const { script, keysAndArgs, known } of batch) {
      if (known) pipeline.evalsha(script.sha, script.numberOfKeys, ...keysAndArgs);
      else pipeline.eval(script.lua, script.numberOfKeys, ...keysAndArgs);
    }
    pipeline.wait(this.confirmation.replicas, this.confirmation.timeoutMs);
    let replies: [Error | null, unknown][];
    try {
      replies = (await pipeline.exec())!;
    } catch (err) {
      // The slot map changed since the batch was grouped: group each write again.
      if (err instanceof Error && err.message === SPLIT_PIPELINE) for (const write of [...batch].reverse()) this.enqueue(write, true);
      else for (const write of batch) write.reject(err);
      return;
    }
    const [waitError, replicas] = replies[batch.length]! as [Error | null, number];
    // Unknown scripts go again, as EVAL, first in the next batch: the WAIT went before they ran.
    const unknown = batch.filter((write, i) => write.known && replies[i]![0]?.message.startsWith("NOSCRIPT"));
    for (const write of [...unknown].reverse()) this.enqueue({ ...write, known: false }, true);
    batch.forEach((write, i) => {
      const [error, reply] = replies[i]!;
      if (unknown.includes(write)) return;
      if (error) {
        write.reject(error);
      } else if (waitError) {
        write.reject(waitError);
      } else if (replicas < this.confirmation.replicas) {
        write.reject(
          new AppError(
            ErrorCode.UNAVAILABLE,
            `the write was applied on its Redis master, but only ${replicas} of the ${this.confirmation.replicas} replicas required (SWARM_REDIS_WAIT_REPLICAS) confirmed it within ${this.confirmation.timeoutMs} ms, so a failover may still lose it: retrying with the same opId is safe (it returns this outcome, or applies the write once if it was lost)`,
            { confirmedReplicas: replicas, requiredReplicas: this.confirmation.replicas },
          ),
        );
      } else {
        write.resolve(reply);
      }
    });
  }
}
