import { health, type HealthReport } from "../resolvers/health.js";
import { builder } from "./builder.js";

const Health = builder.objectRef<HealthReport>("Health").implement({
  description: "Whether this server instance can serve requests.",
  fields: (t) => ({
    ok: t.exposeBoolean("ok", { description: "True when the server and its Redis answer." }),
    redisReachable: t.exposeBoolean("redisReachable"),
    redisLatencyMs: t.exposeFloat("redisLatencyMs", { nullable: true, description: "PING round trip in ms." }),
  }),
});

builder.queryField("health", (t) =>
  t.field({ type: Health, description: "Status of this server and its Redis.", resolve: (_root, _args, ctx) => health(ctx) }),
);
