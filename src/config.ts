import { parseArgs } from "node:util";
import path from "node:path";
import { parseOrigins } from "./security/request-origin.js";

/**
 * Who may introspect the schema and get field suggestions ("Did you mean ...?") in error
 * messages: every authenticated key, admin keys only (everyone in open mode), or nobody.
 */
export type Introspection = "authenticated" | "admin" | "off";

/** Everything the server can be told, parsed once from env and flags. */
export interface Config {
  /** HTTP listen address. */
  readonly host: string;
  /** HTTP listen port; 0 picks a free one. */
  readonly port: number;
  /** Redis to use; null (and no redisClusterNodes) starts the embedded redis-server. */
  readonly redisUrl: string | null;
  /**
   * Seed nodes of a Redis Cluster to use instead, comma-separated `host:port` (any of its
   * masters or replicas; the rest are discovered); null: not a cluster.
   */
  readonly redisClusterNodes: string | null;
  /** Where the embedded redis-server keeps its data (AOF). */
  readonly dataDir: string;
  /** Prefix of every Redis key and channel, to isolate deployments and tests. */
  readonly keyPrefix: string;
  /** Document snapshots kept per context, for `snapshot` and `rollbackContext`. */
  readonly historyLimit: number;
  /** Change-feed entries kept per context stream. */
  readonly feedRetention: number;
  /** Largest serialized document, in bytes. */
  readonly maxDocumentBytes: number;
  /** Deepest nesting of objects/arrays in a document. */
  readonly maxDocumentDepth: number;
  /** How long an opId's outcome is remembered, in seconds. */
  readonly opIdTtlSeconds: number;
  /**
   * How long the outcome of a write sent without an opId is remembered, in seconds: it must
   * outlast the Redis client's resend of a command whose reply was lost (see redis/clients.ts).
   */
  readonly resendTtlSeconds: number;
  /**
   * How long an ended (RELEASED or EXPIRED) allocation is kept, in ms after it ended; then the
   * lease sweeper prunes it (allocation(id) is null; its feed entries stay, under feed retention).
   */
  readonly endedAllocationRetentionMs: number;
  /**
   * How long a deleted context's feed and counters are kept, in ms: a subscriber resuming within
   * it gets the rest of the feed, DELETED included, and a context created again under the id
   * continues its seqs. After it they are pruned, and a new context of the id starts its seqs,
   * allocation numbers and lock tokens above every earlier context's of the id (see keys.ts IndexKeys.counterFloor).
   */
  readonly deletedContextRetentionMs: number;
  /**
   * Pause between the lease sweeper's passes (one runs at a time), in ms, and between the deletion
   * sweeper's; 0 turns both off (accepted ledger operations still expire overdue leases; deleted
   * contexts are then never pruned).
   */
  readonly leaseSweepMs: number;
  /** Changes a feed subscriber may have waiting before it is ended with a resync (its memory bound, in changes). */
  readonly subscriberBuffer: number;
  /**
   * Bytes of changes (as stored in Redis) a feed subscriber may have waiting or being written to
   * it before it is ended with a resync (its memory bound, in bytes); a single batch always goes.
   */
  readonly subscriberBufferBytes: number;
  /**
   * How long a feed subscriber may take nothing while more than its bound (subscriberBuffer,
   * subscriberBufferBytes) waits for it before it is ended with a resync, in ms. One that keeps
   * taking is never ended while it replays.
   */
  readonly subscriberStallMs: number;
  /** Operations one WebSocket connection may have running at once. */
  readonly maxSubscriptionsPerConnection: number;
  /** How often WebSocket connections are pinged, in ms; one that misses a ping's answer is cut. */
  readonly keepAliveMs: number;
  /** A JSON file of API keys (see auth.ts KeyRing); null with apiKeys null: open mode. */
  readonly apiKeysFile: string | null;
  /** The same JSON inline, for deployments that pass secrets as env; exclusive with apiKeysFile. */
  readonly apiKeys: string | null;
  /**
   * Origins besides the server's own whose browser pages may call it (CORS and WebSocket), e.g. an
   * admin console hosted elsewhere; a request from any other page is refused (request-origin.ts).
   */
  readonly allowedOrigins: readonly string[];
  /** Who may introspect the schema and see field suggestions; never an unauthenticated request. */
  readonly introspection: Introspection;
  /** Requests (HTTP operations and WebSocket subscribes) one key may make per rate window, across every instance; 0: no limit. */
  readonly rateLimit: number;
  /** The rate window, in ms: a key's count starts at its first request and ends this long after. */
  readonly rateWindowMs: number;
  /**
   * The largest lease, in percent of rateLimit (rounded down): how many requests of a key an
   * instance may admit before it reports them to Redis, and so how far beyond the limit each
   * other instance can take a key; 0: every request is counted in Redis before it is admitted.
   */
  readonly rateLeasePercent: number;
  /** Largest HTTP request body, in bytes. */
  readonly maxRequestBytes: number;
  /** Deepest selection nesting of an operation. */
  readonly maxQueryDepth: number;
  /** Aliased fields per document. */
  readonly maxAliases: number;
  /** Lexical tokens per document. */
  readonly maxTokens: number;
  /** An operation's estimated cost (fields, times list sizes; see query-limits.ts). */
  readonly maxCost: number;
  /** Times one selection set may select the same response name. */
  readonly maxFieldRepeats: number;
  /** Bytes of stored data one response (or subscription event) may read and carry. */
  readonly maxResponseBytes: number;
  /** Operations per HTTP batch (a JSON array body); 0 refuses batches. */
  readonly maxBatch: number;
  /** How long shutting down lets in-flight work finish, in ms, before cutting connections. */
  readonly shutdownGraceMs: number;
  /** How often Redis is checked for lost state (its epoch), in ms. */
  readonly stateCheckMs: number;
  /** How often this instance writes its heartbeat (serverInstances), in ms. */
  readonly heartbeatMs: number;
  /** How long a heartbeat counts (its key's TTL), in ms: an instance that stopped beating leaves serverInstances within it; at least twice heartbeatMs. */
  readonly heartbeatTtlMs: number;
  /**
   * How long an operation waits for the answer to one Redis command, in ms, before it gets
   * UNAVAILABLE (see redis/clients.ts): a write's outcome is then unknown, as after a dropped connection.
   */
  readonly redisTimeoutMs: number;
  /**
   * Replicas that must confirm each write (Redis WAIT on the write's master) before it is
   * acknowledged, waiting at most a quarter of redisTimeoutMs for them; fewer make the write
   * UNAVAILABLE (applied on the master, not confirmed: a retry with the same opId is safe).
   * 0: writes are acknowledged once their master applied them, and a failover may lose the last
   * ones (Redis replication is asynchronous).
   */
  readonly redisWaitReplicas: number;
  /** Lowest level of log lines written (JSON, to stdout): debug, info, warn or error. */
  readonly logLevel: string;
}

interface Setting {
  readonly key: keyof Config;
  readonly env: string;
  readonly flag: string;
  readonly kind: "string" | "int" | "optional-string";
  readonly fallback: string | number | null;
  /** The values a string setting may take, when restricted. */
  readonly values?: readonly string[];
}

/** The one table of settings: docs/configuration.md lists it (test/unit/configuration-docs.test.ts checks). */
export const SETTINGS: readonly Setting[] = [
  { key: "host", env: "HOST", flag: "host", kind: "string", fallback: "127.0.0.1" },
  { key: "port", env: "PORT", flag: "port", kind: "int", fallback: 4000 },
  { key: "redisUrl", env: "REDIS_URL", flag: "redis-url", kind: "optional-string", fallback: null },
  { key: "redisClusterNodes", env: "REDIS_CLUSTER_NODES", flag: "redis-cluster-nodes", kind: "optional-string", fallback: null },
  { key: "dataDir", env: "SWARM_DATA_DIR", flag: "data-dir", kind: "string", fallback: "data" },
  { key: "keyPrefix", env: "SWARM_KEY_PREFIX", flag: "key-prefix", kind: "string", fallback: "sc" },
  { key: "historyLimit", env: "SWARM_HISTORY_LIMIT", flag: "history-limit", kind: "int", fallback: 100 },
  { key: "feedRetention", env: "SWARM_FEED_RETENTION", flag: "feed-retention", kind: "int", fallback: 10_000 },
  { key: "maxDocumentBytes", env: "SWARM_MAX_DOCUMENT_BYTES", flag: "max-document-bytes", kind: "int", fallback: 1_048_576 },
  { key: "maxDocumentDepth", env: "SWARM_MAX_DOCUMENT_DEPTH", flag: "max-document-depth", kind: "int", fallback: 32 },
  { key: "opIdTtlSeconds", env: "SWARM_OPID_TTL_SECONDS", flag: "opid-ttl-seconds", kind: "int", fallback: 86_400 },
  { key: "resendTtlSeconds", env: "SWARM_RESEND_TTL_SECONDS", flag: "resend-ttl-seconds", kind: "int", fallback: 300 },
  { key: "endedAllocationRetentionMs", env: "SWARM_ENDED_ALLOCATION_RETENTION_MS", flag: "ended-allocation-retention-ms", kind: "int", fallback: 86_400_000 },
  { key: "deletedContextRetentionMs", env: "SWARM_DELETED_CONTEXT_RETENTION_MS", flag: "deleted-context-retention-ms", kind: "int", fallback: 86_400_000 },
  { key: "leaseSweepMs", env: "SWARM_LEASE_SWEEP_MS", flag: "lease-sweep-ms", kind: "int", fallback: 500 },
  { key: "subscriberBuffer", env: "SWARM_SUBSCRIBER_BUFFER", flag: "subscriber-buffer", kind: "int", fallback: 10_000 },
  { key: "subscriberBufferBytes", env: "SWARM_SUBSCRIBER_BUFFER_BYTES", flag: "subscriber-buffer-bytes", kind: "int", fallback: 4_194_304 },
  { key: "subscriberStallMs", env: "SWARM_SUBSCRIBER_STALL_MS", flag: "subscriber-stall-ms", kind: "int", fallback: 10_000 },
  { key: "maxSubscriptionsPerConnection", env: "SWARM_MAX_SUBSCRIPTIONS_PER_CONNECTION", flag: "max-subscriptions-per-connection", kind: "int", fallback: 100 },
  { key: "keepAliveMs", env: "SWARM_KEEPALIVE_MS", flag: "keepalive-ms", kind: "int", fallback: 12_000 },
  { key: "apiKeysFile", env: "SWARM_API_KEYS_FILE", flag: "api-keys-file", kind: "optional-string", fallback: null },
  { key: "apiKeys", env: "SWARM_API_KEYS", flag: "api-keys", kind: "optional-string", fallback: null },
  { key: "allowedOrigins", env: "SWARM_ALLOWED_ORIGINS", flag: "allowed-origins", kind: "string", fallback: "" },
  { key: "introspection", env: "SWARM_INTROSPECTION", flag: "introspection", kind: "string", fallback: "authenticated", values: ["authenticated", "admin", "off"] },
  { key: "rateLimit", env: "SWARM_RATE_LIMIT", flag: "rate-limit", kind: "int", fallback: 1_000 },
  { key: "rateWindowMs", env: "SWARM_RATE_WINDOW_MS", flag: "rate-window-ms", kind: "int", fallback: 1_000 },
  { key: "rateLeasePercent", env: "SWARM_RATE_LEASE_PERCENT", flag: "rate-lease-percent", kind: "int", fallback: 5 },
  { key: "maxRequestBytes", env: "SWARM_MAX_REQUEST_BYTES", flag: "max-request-bytes", kind: "int", fallback: 2_097_152 },
  { key: "maxQueryDepth", env: "SWARM_MAX_QUERY_DEPTH", flag: "max-query-depth", kind: "int", fallback: 12 },
  { key: "maxAliases", env: "SWARM_MAX_ALIASES", flag: "max-aliases", kind: "int", fallback: 30 },
  { key: "maxTokens", env: "SWARM_MAX_TOKENS", flag: "max-tokens", kind: "int", fallback: 5_000 },
  // Query limits: the documents of test/gql reach at most depth 5, 0 aliases, 605 tokens and cost
  // 58,002 (GetHistory with limit 1,000: every field of 1,000 feed entries with their
  // allocations); an admin console's whole-context query reaches depth 5 and cost 3,105.
  { key: "maxCost", env: "SWARM_MAX_COST", flag: "max-cost", kind: "int", fallback: 100_000 },
  { key: "maxFieldRepeats", env: "SWARM_MAX_FIELD_REPEATS", flag: "max-field-repeats", kind: "int", fallback: 10 },
  { key: "maxResponseBytes", env: "SWARM_MAX_RESPONSE_BYTES", flag: "max-response-bytes", kind: "int", fallback: 16_777_216 },
  { key: "maxBatch", env: "SWARM_MAX_BATCH", flag: "max-batch", kind: "int", fallback: 0 },
  { key: "shutdownGraceMs", env: "SWARM_SHUTDOWN_GRACE_MS", flag: "shutdown-grace-ms", kind: "int", fallback: 5_000 },
  { key: "stateCheckMs", env: "SWARM_STATE_CHECK_MS", flag: "state-check-ms", kind: "int", fallback: 1_000 },
  { key: "heartbeatMs", env: "SWARM_HEARTBEAT_MS", flag: "heartbeat-ms", kind: "int", fallback: 5_000 },
  { key: "heartbeatTtlMs", env: "SWARM_HEARTBEAT_TTL_MS", flag: "heartbeat-ttl-ms", kind: "int", fallback: 15_000 },
  { key: "redisTimeoutMs", env: "SWARM_REDIS_TIMEOUT_MS", flag: "redis-timeout-ms", kind: "int", fallback: 3_000 },
  { key: "redisWaitReplicas", env: "SWARM_REDIS_WAIT_REPLICAS", flag: "redis-wait-replicas", kind: "int", fallback: 0 },
  { key: "logLevel", env: "SWARM_LOG_LEVEL", flag: "log-level", kind: "string", fallback: "info", values: ["debug", "info", "warn", "error"] },
];

const MINIMUMS: Partial<Record<keyof Config, number>> = {
  port: 0,
  historyLimit: 1,
  feedRetention: 1,
  maxDocumentBytes: 2,
  maxDocumentDepth: 1,
  opIdTtlSeconds: 1,
  resendTtlSeconds: 1,
  endedAllocationRetentionMs: 0,
  // A create must read the counter floor within a quarter of it (create-context-7.lua).
  deletedContextRetentionMs: 1_000,
  subscriberBuffer: 1,
  subscriberBufferBytes: 1,
  subscriberStallMs: 1,
  maxSubscriptionsPerConnection: 1,
  keepAliveMs: 100,
  rateWindowMs: 1,
  maxRequestBytes: 1_024,
  maxQueryDepth: 1,
  maxAliases: 0,
  maxTokens: 1,
  maxCost: 1,
  maxFieldRepeats: 1,
  maxResponseBytes: 1_024,
  stateCheckMs: 10,
  heartbeatMs: 10,
  heartbeatTtlMs: 20,
  redisTimeoutMs: 10,
};

/**
 * Builds the Config from command-line flags (`--port 4000`) over environment variables (`PORT`)
 * over defaults. Throws an Error naming the setting when a value is malformed or out of range.
 */
export function loadConfig(argv: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Config {
  const { values } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(SETTINGS.map((s) => [s.flag, { type: "string" as const }])),
    strict: true,
  });
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const raw = (values[s.flag] as string | undefined) ?? env[s.env];
    if (raw === undefined || raw === "") {
      out[s.key] = s.fallback;
    } else if (s.kind === "int") {
      const n = Number(raw);
      const min = MINIMUMS[s.key] ?? 0;
      if (!Number.isSafeInteger(n) || n < min) {
        throw new Error(`--${s.flag} / ${s.env} must be an integer >= ${min}, got "${raw}"`);
      }
      out[s.key] = n;
    } else if (s.values && !s.values.includes(raw)) {
      throw new Error(`--${s.flag} / ${s.env} must be one of ${s.values.join(", ")}, got "${raw}"`);
    } else {
      out[s.key] = raw;
    }
  }
  if (out.apiKeysFile !== null && out.apiKeys !== null) {
    throw new Error("give API keys either in a file (--api-keys-file / SWARM_API_KEYS_FILE) or inline (--api-keys / SWARM_API_KEYS), not both");
  }
  if ((out.heartbeatTtlMs as number) < 2 * (out.heartbeatMs as number)) {
    throw new Error("--heartbeat-ttl-ms / SWARM_HEARTBEAT_TTL_MS must be at least twice --heartbeat-ms / SWARM_HEARTBEAT_MS");
  }
  if ((out.rateLeasePercent as number) > 100) {
    throw new Error(`--rate-lease-percent / SWARM_RATE_LEASE_PERCENT must be at most 100, got "${out.rateLeasePercent as number}"`);
  }
  if (out.redisUrl !== null && out.redisClusterNodes !== null) {
    throw new Error("give either one Redis (--redis-url / REDIS_URL) or a Redis Cluster (--redis-cluster-nodes / REDIS_CLUSTER_NODES), not both");
  }
  if (out.redisClusterNodes !== null && !/^[^,\s]+:\d{1,5}(,[^,\s]+:\d{1,5})*$/.test(out.redisClusterNodes as string)) {
    throw new Error(`--redis-cluster-nodes / REDIS_CLUSTER_NODES must be host:port[,host:port...], got "${out.redisClusterNodes as string}"`);
  }
  out.dataDir = path.resolve(out.dataDir as string);
  out.allowedOrigins = parseOrigins(out.allowedOrigins as string, "--allowed-origins / SWARM_ALLOWED_ORIGINS");
  return Object.freeze(out) as unknown as Config;
}
