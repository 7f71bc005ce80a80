import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { startRedisServer, type RedisServer } from "./redis-server.js";

const run = promisify(execFile);

/** How long nodes may go unheard before the cluster fails them over, in ms: short, so failover tests finish quickly. */
const NODE_TIMEOUT_MS = 2_000;
/** How long the cluster may take to agree after it is created or a node changes, in ms. */
const SETTLE_TIMEOUT_MS = 30_000;

export interface RedisCluster {
  /** Every node: the masters first, in the order redis-cli assigned them slots, then the replicas. */
  readonly nodes: readonly RedisServer[];
  /** Comma-separated `host:port` of every node, as REDIS_CLUSTER_NODES takes them. */
  readonly seeds: string;
  /** The node that serves `slot` now (a master): asks the cluster, so it follows failovers. */
  masterOf(slot: number): Promise<RedisServer>;
  /** Resolves once every node's view is `cluster_state:ok` with every slot served and every replica in sync. */
  settled(): Promise<void>;
  /** Kills every node and removes their data directories. */
  stop(): Promise<void>;
}

/**
 * Starts a Redis Cluster of `masters` masters, each with `replicas` replicas, on free loopback
 * ports, persisting nothing (DESIGN.md, Tests); each node keeps its cluster config in its own dir,
 * so a node killed and restarted rejoins with its slots (and, without persistence, no data).
 * `extraArgs` adds redis-server options for every node (`--appendonly yes`, say). Resolves once
 * the cluster is settled.
 */
export async function startRedisCluster(masters = 3, replicas = 0, extraArgs: readonly string[] = []): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      nodes.push(
        await startRedisServer([
          "--cluster-enabled", "yes",
          "--cluster-config-file", "nodes.conf",
          "--cluster-node-timeout", String(NODE_TIMEOUT_MS),
          // A test that restarts a master empty wants its slots served (empty) again, not the whole cluster down.
          "--cluster-require-full-coverage", "no",
          ...extraArgs,
        ]),
      );
    }
    const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
    await run("redis-cli", ["--cluster", "create", ...addresses, "--cluster-replicas", String(replicas), "--cluster-yes"]);
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw err;
  }
  const byPort = new Map(nodes.map((n) => [n.port, n]));
  const ask = async <T>(node: RedisServer, command: string, ...args: string[]): Promise<T> => {
    const client = new Redis(node.port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on("error", () => {});
    try {
      await client.connect();
      return (await client.call(command, ...args)) as T;
    } finally {
      client.disconnect();
    }
  };
  const cluster: RedisCluster = {
    nodes,
    seeds: nodes.map((n) => `127.0.0.1:${n.port}`).join(","),
    async masterOf(slot) {
      for (const node of nodes) {
        const ranges = await ask<[number, number, [string, number]][]>(node, "cluster", "slots").catch(() => null);
        const range = ranges?.find(([from, to]) => slot >= from && slot <= to);
        if (range) return byPort.get(range[2][1])!;
      }
      throw new Error(`no node serves slot ${slot}`);
    },
    async settled() {
      const deadline = Date.now() + SETTLE_TIMEOUT_MS;
      for (;;) {
        const views = await Promise.all(
          nodes.map(async (node) => {
            const info = await ask<string>(node, "cluster", "info").catch(() => "");
            const replication = await ask<string>(node, "info", "replication").catch(() => "");
            return /cluster_state:ok/.test(info) && /cluster_slots_ok:16384/.test(info) && !/master_link_status:down/.test(replication);
          }),
        );
        if (views.every(Boolean)) return;
        if (Date.now() > deadline) throw new Error(`the Redis Cluster did not settle within ${SETTLE_TIMEOUT_MS / 1000} s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
  await cluster.settled();
  return cluster;
}
