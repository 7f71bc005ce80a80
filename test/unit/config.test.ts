// Proves configuration precedence (flag over env over default) and that malformed values are refused naming the setting.
import { expect, test } from "vitest";
import { loadConfig } from "../../src/config.js";

test("defaults, env and flags, flags winning", () => {
  const defaults = loadConfig([], {});
  expect(defaults).toMatchObject({ host: "127.0.0.1", port: 4000, redisUrl: null, historyLimit: 100, maxDocumentBytes: 1_048_576 });
  const fromEnv = loadConfig([], { PORT: "5000", REDIS_URL: "redis://r:6379", SWARM_HISTORY_LIMIT: "7" });
  expect(fromEnv).toMatchObject({ port: 5000, redisUrl: "redis://r:6379", historyLimit: 7 });
  expect(loadConfig(["--port", "6000"], { PORT: "5000" }).port).toBe(6000);
  expect(Object.isFrozen(defaults)).toBe(true);
});

test("malformed or out-of-range values are refused naming the flag and variable", () => {
  expect(() => loadConfig(["--port", "x"], {})).toThrow(/--port \/ PORT/);
  expect(() => loadConfig([], { SWARM_HISTORY_LIMIT: "0" })).toThrow(/--history-limit \/ SWARM_HISTORY_LIMIT must be an integer >= 1/);
  expect(() => loadConfig(["--nope", "1"], {})).toThrow();
  expect(() => loadConfig([], { SWARM_RATE_WINDOW_MS: "0" })).toThrow(/--rate-window-ms \/ SWARM_RATE_WINDOW_MS must be an integer >= 1/);
  expect(() => loadConfig(["--rate-lease-percent", "101"], {})).toThrow(/--rate-lease-percent \/ SWARM_RATE_LEASE_PERCENT must be at most 100/);
  expect(loadConfig(["--rate-lease-percent", "0"], {}).rateLeasePercent).toBe(0);
});

test("restricted strings take only their values, and keys come from a file or inline, not both", () => {
  expect(loadConfig([], { SWARM_LOG_LEVEL: "debug" }).logLevel).toBe("debug");
  expect(() => loadConfig([], { SWARM_LOG_LEVEL: "loud" })).toThrow(/--log-level \/ SWARM_LOG_LEVEL must be one of debug, info, warn, error/);
  expect(loadConfig([], {})).toMatchObject({ apiKeysFile: null, apiKeys: null, rateLimit: 1_000, rateWindowMs: 1_000, rateLeasePercent: 5, maxBatch: 0, shutdownGraceMs: 5_000 });
  expect(() => loadConfig(["--api-keys-file", "k.json"], { SWARM_API_KEYS: "[]" })).toThrow(/not both/);
});
