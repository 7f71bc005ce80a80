import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { startRedisCluster, type RedisCluster } from "../../support/redis-cluster.js";
import type { RedisServer } from "../../support/redis-server.js";

/**
 * Direct connections to each node of a test cluster, for what only a node itself can say (its
 * pub/sub subscribers, its clients, its role): one connection per node, made on first use, that
 * never retries, so a killed node answers with an error at once.
 */
export class ClusterNodes {
  private readonly clients = new Map<number, Redis>();

  constructor(private readonly cluster: RedisCluster) {}

  /** Runs `command` on `node`; rejects at once if the node is down. */
  async call<T>(node: RedisServer, command: string, ...args: (string | number)[]): Promise<T> {
    let client = this.clients.get(node.port);
    if (!client || client.status === "end") {
      client = new Redis(node.port, "127.0.0.1", { retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
      client.on("error", () => {});
      this.clients.set(node.port, client);
      await client.connect();
    }
    return (await client.call(command, ...args)) as T;
  }

  /** The nodes with a subscriber to `channel` (PUBSUB NUMSUB, which counts a node's own), with their counts; down nodes are left out. */
  async subscribed(channel: string): Promise<{ node: RedisServer; count: number }[]> {
    const counts = await Promise.all(
      this.cluster.nodes.map(async (node) => {
        const reply = await this.call<[string, number]>(node, "PUBSUB", "NUMSUB", channel).catch(() => null);
        return { node, count: reply?.[1] ?? 0 };
      }),
    );
    return counts.filter((c) => c.count > 0);
  }

  /** Whether `node` is a master now (ROLE). */
  async isMaster(node: RedisServer): Promise<boolean> {
    const [role] = await this.call<[string]>(node, "ROLE");
    return role === "master";
  }

  /** Closes every connection. */
  close(): void {
    for (const client of this.clients.values()) client.disconnect();
    this.clients.clear();
  }
}

/** A test file's own Redis Cluster and direct connections to its nodes (see useRedisCluster). */
export interface OwnCluster {
  readonly cluster: RedisCluster;
  readonly nodes: ClusterNodes;
}

/**
 * A Redis Cluster of the calling file's (or describe block's) own, of `masters` masters with
 * `replicas` replicas each (support/redis-cluster.ts), started in beforeAll and stopped, with its
 * node connections, in afterAll: call it before the useTestServer calls that use it, so that their
 * servers close first. Its members throw until the cluster has started.
 */
export function useRedisCluster(masters: number, replicas: number): OwnCluster {
  let cluster: RedisCluster | undefined;
  let nodes: ClusterNodes | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster(masters, replicas);
    nodes = new ClusterNodes(cluster);
  });
  afterAll(async () => {
    nodes?.close();
    await cluster?.stop();
  });
  const started = () => {
    if (!cluster || !nodes) throw new Error("useRedisCluster: the cluster starts in beforeAll; use it from a test or a later hook");
    return { cluster, nodes };
  };
  return {
    get cluster() {
      return started().cluster;
    },
    get nodes() {
      return started().nodes;
    },
  };
}
