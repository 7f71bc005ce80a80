import { health, reinitialize, serverInstances, type HealthReport } from "../resolvers/health.js";
import type { LostShard } from "../src/redis/state-guard.js";
import type { ServerInstance } from "../src/store/instances.js";
import { builder } from "./builder.js";

const StoreState = builder.enumType("StoreState", {
  description: "Whether Redis still holds this deployment's state (docs/operations.md).",
  values: {
    INTACT: { value: "intact", description: "The deployment's epoch is there: operations are served." },
    UNVERIFIED: {
      value: "unverified",
      description: "Redis is unreachable, does not answer (stalled), or is being checked after a reconnect: operations get UNAVAILABLE.",
    },
    LOST: { value: "lost", description: "Redis was restarted empty or flushed: operations get UNAVAILABLE until an admin calls reinitialize." },
  } as const,
});

const SlotRangeRef = builder.objectRef<readonly [number, number]>("SlotRange").implement({
  description: "Hash slots of a Redis Cluster, first to last inclusive.",
  fields: (t) => ({
    first: t.int({ resolve: (range) => range[0] }),
    last: t.int({ resolve: (range) => range[1] }),
  }),
});

const LostShardRef = builder.objectRef<LostShard>("LostShard").implement({
  description: "A master of the Redis Cluster serving hash slots whose state is lost: their swarms get UNAVAILABLE until an admin calls reinitialize (docs/operations.md, Lost state).",
  fields: (t) => ({
    node: t.exposeString("node", { description: "The master, host:port as the cluster announces it: what reinitialize's `node` takes." }),
    slots: t.field({ type: [SlotRangeRef], description: "Its lost slots (of those that held state), ascending.", resolve: (shard) => shard.slots }),
  }),
});

const Health = builder.objectRef<HealthReport>("Health").implement({
  description: "Whether this server instance can serve requests.",
  fields: (t) => ({
    ok: t.exposeBoolean("ok", { description: "True when Redis answers and its state is intact." }),
    redisReachable: t.exposeBoolean("redisReachable", {
      description: "False when the connection to Redis is down or Redis did not answer a PING within 1 s (or SWARM_REDIS_TIMEOUT_MS, if shorter): stalled or overloaded.",
    }),
    redisLatencyMs: t.exposeFloat("redisLatencyMs", { nullable: true, description: "PING round trip in ms." }),
    state: t.field({
      type: StoreState,
      description: "On a Redis Cluster, LOST when any shard's state is lost (see lostShards), else UNVERIFIED while any is being verified.",
      resolve: (report) => report.state,
    }),
    lostShards: t.field({
      type: [LostShardRef],
      description: "On a Redis Cluster, the masters serving slots whose state is lost, by address; swarms elsewhere are served. Empty on one Redis.",
      resolve: (report) => report.lostShards,
    }),
  }),
});

builder.queryField("health", (t) =>
  t.field({ type: Health, description: "Status of this server and its Redis.", resolve: (_root, _args, ctx) => health(ctx) }),
);

builder.mutationField("reinitialize", (t) =>
  t.field({
    type: StoreState,
    description:
      'Admins only: after Redis lost its state (health.state LOST), declares what Redis holds now the deployment\'s state, so that every instance serves again. What was lost stays lost: re-create contexts and budgets. `confirm` must be "the state is lost". On a Redis Cluster, `node` limits it to the lost slots of one master (health.lostShards); without it, every lost slot is re-initialised.',
    args: {
      confirm: t.arg.string({ required: true }),
      node: t.arg.string({ description: "Redis Cluster only: host:port of the master whose lost slots to re-initialise (health.lostShards.node)." }),
    },
    resolve: (_root, args, ctx) => reinitialize(args, ctx),
  }),
);

const ServerInstanceRef = builder.objectRef<ServerInstance>("ServerInstance").implement({
  description: "A running server instance, as its last heartbeat recorded it.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "host:pid:random, new at every start." }),
    version: t.exposeString("version", { description: "The server's package version." }),
    startedAt: t.field({ type: "DateTime", resolve: (i) => i.startedAt }),
    heartbeat: t.field({ type: "DateTime", description: "When its last heartbeat was written (Redis's clock).", resolve: (i) => i.heartbeat }),
    subscriptions: t.exposeInt("subscriptions", { description: "Subscriptions (contextChanges, watchSlice) open on it at its last heartbeat." }),
  }),
});

builder.queryField("serverInstances", (t) =>
  t.field({
    type: [ServerInstanceRef],
    description:
      "Admins only: every running server instance of this deployment (its key prefix), oldest start first. Each writes a heartbeat every SWARM_HEARTBEAT_MS (default 5 s); one that stops leaves at once, one that is killed within SWARM_HEARTBEAT_TTL_MS (default 15 s).",
    resolve: (_root, _args, ctx) => serverInstances(ctx),
  }),
);
