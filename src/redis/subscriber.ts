import { Cluster, Redis, type RedisOptions } from "ioredis";
import { closeRedis, type RedisClient, type RedisTarget } from "./clients.js";

/** Longest pause between two attempts to subscribe again, in ms. */
const MAX_RETRY_DELAY_MS = 2_000;

/**
 * A pub/sub connection that keeps itself subscribed to fixed channels: to the one Redis, or to
 * any one node of a Redis Cluster, master or replica, since a classic PUBLISH reaches every node
 * of a cluster. When the connection is lost (killed, its node died or was failed over), it
 * connects again, on a cluster to the next node it knows of, and once Redis has confirmed the
 * subscription it calls `resubscribed`: messages published meanwhile are gone, and only the
 * caller knows where to read what they announced.
 *
 * This is deliberately not ioredis's own resubscription: a Cluster client moves its subscriber
 * to another node without any event (ioredis 5.9, cluster/ClusterSubscriber.js), so a caller
 * could never learn that messages were lost.
 */
export class Subscriber {
  private connection: Redis | undefined;
  private closed = false;
  private failures = 0;
  private attempt = 0;
  private retry: NodeJS.Timeout | undefined;

  private constructor(
    private readonly target: RedisTarget,
    private readonly known: RedisClient,
    private readonly name: string,
    private readonly channels: readonly string[],
    private readonly onMessage: (channel: string, message: string) => void,
    private readonly resubscribed: () => void,
  ) {}

  /**
   * Subscribes to `channels` on `target`, naming the connection `name`; `onMessage` hears every
   * message, `resubscribed` every confirmed subscription after a lost one. On a cluster the nodes
   * to try are `known`'s (the command connection's current view of the cluster) and the seed
   * nodes. Rejects with the last connection error when no node (or the one Redis) can be
   * subscribed to now; after that, it retries on its own, with a back-off up to 2 s, until closed.
   */
  static async open(
    target: RedisTarget,
    known: RedisClient,
    name: string,
    channels: readonly string[],
    onMessage: (channel: string, message: string) => void,
    resubscribed: () => void,
  ): Promise<Subscriber> {
    const subscriber = new Subscriber(target, known, name, channels, onMessage, resubscribed);
    let lastError: unknown;
    for (let tried = 0; tried < subscriber.candidates().length; tried++) {
      try {
        await subscriber.connect();
        return subscriber;
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  }

  /** Stops for good: unsubscribes politely when `gracefully` and Redis answers within `waitMs`, else drops the connection. */
  async close(gracefully: boolean, waitMs: number): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    const connection = this.connection;
    if (!connection) return;
    if (gracefully) await closeRedis(connection, waitMs);
    else connection.disconnect();
  }

  /** `host:port` of every node to try, or the one Redis's URL. */
  private candidates(): string[] {
    if ("url" in this.target) return [this.target.url];
    const current = this.known instanceof Cluster ? this.known.nodes("all").map((node) => `${node.options.host}:${node.options.port}`) : [];
    return [...new Set([...current, ...this.target.clusterNodes])];
  }

  /** Connects to the next candidate and subscribes; rejects (the connection closed) if that fails. */
  private async connect(): Promise<void> {
    const candidates = this.candidates();
    const where = candidates[this.attempt++ % candidates.length]!;
    const options: RedisOptions = {
      connectionName: this.name,
      lazyConnect: true,
      // Lost is lost: the next attempt may be on another node (see lost()).
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    };
    const connection = "url" in this.target ? new Redis(where, options) : new Redis({ ...options, host: where.slice(0, where.lastIndexOf(":")), port: Number(where.slice(where.lastIndexOf(":") + 1)) });
    connection.on("error", () => {
      // The "end" that follows starts the next attempt; callers cannot act on the cause.
    });
    connection.on("message", this.onMessage);
    try {
      await connection.connect();
      if (!("url" in this.target)) {
        // A node that does not see the cluster (just restarted, or cut off) would not hear what
        // is published on the others.
        const info = (await connection.call("CLUSTER", "INFO")) as string;
        if (!/^cluster_state:ok\r?$/m.test(info)) throw new Error(`the Redis Cluster node ${where} does not see a healthy cluster`);
      }
      await connection.subscribe(...this.channels);
    } catch (err) {
      connection.disconnect();
      throw err;
    }
    if (this.closed) {
      connection.disconnect();
      return;
    }
    this.connection = connection;
    connection.once("end", () => this.lost());
  }

  private lost(): void {
    this.connection = undefined;
    if (this.closed) return;
    // About as ioredis backs off: soon after a single loss, at most every 2 s while Redis is away.
    const delay = Math.min(++this.failures * 50, MAX_RETRY_DELAY_MS);
    this.retry = setTimeout(() => {
      this.connect().then(
        () => {
          this.failures = 0;
          if (!this.closed) this.resubscribed();
        },
        () => this.lost(),
      );
    }, delay);
  }
}
