import type { TestProject } from "vitest/node";
import { startRedisCluster } from "../support/redis-cluster.js";
import { startRedisServer } from "../support/redis-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
    /** Seed nodes (REDIS_CLUSTER_NODES) of the Redis Cluster the cluster project runs on; absent elsewhere. */
    redisClusterNodes?: string;
  }
}

/**
 * One redis-server for the whole run, or for the cluster project a Redis Cluster of three masters
 * (test servers then use it, see helpers/app.ts testConfig); each test file isolates itself with
 * its own key prefix.
 */
export default async function setup(project: TestProject) {
  const redis = await startRedisServer();
  project.provide("redisUrl", redis.url);
  if (project.name !== "cluster") return () => redis.stop();
  const cluster = await startRedisCluster(3);
  project.provide("redisClusterNodes", cluster.seeds);
  return async () => {
    await cluster.stop();
    await redis.stop();
  };
}
