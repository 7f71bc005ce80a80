import { health, reinitialize, type HealthReport } from "../resolvers/health.js";
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

const Health = builder.objectRef<HealthReport>("Health").implement({
  description: "Whether this server instance can serve requests.",
  fields: (t) => ({
    ok: t.exposeBoolean("ok", { description: "True when Redis answers and its state is intact." }),
    redisReachable: t.exposeBoolean("redisReachable", {
      description: "False when the connection to Redis is down or Redis did not answer a PING within 1 s (or SWARM_REDIS_TIMEOUT_MS, if shorter): stalled or overloaded.",
    }),
    redisLatencyMs: t.exposeFloat("redisLatencyMs", { nullable: true, description: "PING round trip in ms." }),
    state: t.field({ type: StoreState, resolve: (report) => report.state }),
  }),
});

builder.queryField("health", (t) =>
  t.field({ type: Health, description: "Status of this server and its Redis.", resolve: (_root, _args, ctx) => health(ctx) }),
);

builder.mutationField("reinitialize", (t) =>
  t.field({
    type: StoreState,
    description:
      'Admins only: after Redis lost its state (health.state LOST), declares what Redis holds now the deployment\'s state, so that every instance serves again. What was lost stays lost: re-create contexts and budgets. `confirm` must be "the state is lost".',
    args: { confirm: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => reinitialize(args, ctx),
  }),
);
