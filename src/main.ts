// The only file that reads the environment and listens: starts the server from env and flags.
import { readFileSync } from "node:fs";
import { createApp, type App } from "./server/app.js";
import { KeyRing } from "./security/auth.js";
import { loadConfig, type Config } from "./config.js";
import { createLogger, type LogLevel } from "./observability/logger.js";
import { startEmbeddedRedis, type EmbeddedRedis } from "./redis/embedded.js";

function fail(message: string, code: number): never {
  process.stderr.write(`swarm-context: ${message}\n`);
  process.exit(code);
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

let config: Config;
let keys: KeyRing | null;
try {
  config = loadConfig(process.argv.slice(2), process.env);
  if (config.apiKeysFile !== null) keys = KeyRing.parse(readFileSync(config.apiKeysFile, "utf8"), config.apiKeysFile);
  else keys = config.apiKeys === null ? null : KeyRing.parse(config.apiKeys, "SWARM_API_KEYS");
} catch (err) {
  fail(reason(err), 2);
}
const log = createLogger(config.logLevel as LogLevel);

let embedded: EmbeddedRedis | undefined;
let app: App | undefined;
let stopping = false;

async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info("shutting down", { signal, graceMs: config.shutdownGraceMs });
  await app?.close().catch((err: unknown) => log.error("shutdown failed", { error: reason(err) }));
  await embedded?.stop();
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

try {
  embedded =
    config.redisUrl === null && config.redisClusterNodes === null
      ? await startEmbeddedRedis(config.dataDir, {
          exited: (code, signal, restartInMs) =>
            log.error("embedded redis-server exited", { code, signal, restartInMs, log: `${config.dataDir}/redis.log` }),
          restarted: () => log.info("embedded redis-server restarted", { dataDir: config.dataDir }),
        })
      : undefined;
  if (embedded) log.info("embedded redis-server", { dataDir: config.dataDir, joined: embedded.joined, ownerPid: embedded.ownerPid });
} catch (err) {
  fail(reason(err), 1);
}
// On a cluster the URL is unused (redisTarget picks the cluster's nodes).
const target = embedded?.target ?? config.redisUrl ?? "";
try {
  app = await createApp({ ...config, redisUrl: target, keys }, log);
} catch (err) {
  await embedded?.stop();
  fail(
    embedded
      ? `the embedded redis-server at ${target} does not answer (${reason(err)}); see ${config.dataDir}/redis.log`
      : config.redisClusterNodes !== null
        ? `cannot reach the Redis Cluster at ${config.redisClusterNodes} (${reason(err)}); check REDIS_CLUSTER_NODES and that the cluster's state is ok (redis-cli cluster info)`
        : `cannot reach Redis at ${config.redisUrl} (${reason(err)}); start Redis there or fix REDIS_URL (unset it to use the embedded redis-server)`,
    1,
  );
}
try {
  await app.start();
} catch (err) {
  await app.close();
  await embedded?.stop();
  fail(`cannot listen on ${config.host}:${config.port}: ${reason(err)}`, 1);
}
