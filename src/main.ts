// The only file that reads the environment and listens: starts the server from env and flags.
import { createApp, type App } from "./app.js";
import { loadConfig, type Config } from "./config.js";
import { startEmbeddedRedis, type EmbeddedRedis } from "./redis/embedded.js";

function fail(message: string, code: number): never {
  process.stderr.write(`swarm-context: ${message}\n`);
  process.exit(code);
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

let config: Config;
try {
  config = loadConfig(process.argv.slice(2), process.env);
} catch (err) {
  fail(reason(err), 2);
}

let embedded: EmbeddedRedis | undefined;
let app: App | undefined;
let stopping = false;

async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await app?.close().catch(() => undefined);
  await embedded?.stop();
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());

try {
  embedded = config.redisUrl === null ? await startEmbeddedRedis(config.dataDir) : undefined;
} catch (err) {
  fail(reason(err), 1);
}
const target = embedded?.target ?? config.redisUrl!;
try {
  app = await createApp({ ...config, redisUrl: target });
} catch (err) {
  await embedded?.stop();
  fail(
    config.redisUrl === null
      ? `the embedded redis-server at ${target} does not answer (${reason(err)}); see ${config.dataDir}/redis.log`
      : `cannot reach Redis at ${config.redisUrl} (${reason(err)}); start Redis there or fix REDIS_URL (unset it to use the embedded redis-server)`,
    1,
  );
}
try {
  const url = await app.start();
  console.log(`swarm-context listening: GraphiQL at ${url}`);
  if (embedded) console.log(`swarm-context: embedded redis-server, data in ${config.dataDir}`);
} catch (err) {
  await app.close();
  await embedded?.stop();
  fail(`cannot listen on ${config.host}:${config.port} (${reason(err)}); choose another --port or --host`, 1);
}
