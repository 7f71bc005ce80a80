// Proves that a log line is one JSON object holding time, level, msg and the given fields (and nothing else), that lines under the level are dropped, and that authorization headers and keys never reach the output.
import { expect, test } from "vitest";
import { createLogger, type LogLevel } from "../../src/observability/logger.js";

function capture(level: LogLevel) {
  const lines: string[] = [];
  return { log: createLogger(level, (line) => lines.push(line)), lines };
}

test("a line is one JSON object: time (ISO 8601), level (its name), msg and the fields given", () => {
  const { log, lines } = capture("info");
  log.info("request", { requestId: "r-1", codes: ["FORBIDDEN"], durationMs: 1.25, actor: undefined });
  expect(lines).toHaveLength(1);
  expect(lines[0]!.endsWith("\n")).toBe(true);
  const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
  expect(entry).toEqual({ time: expect.any(String), level: "info", msg: "request", requestId: "r-1", codes: ["FORBIDDEN"], durationMs: 1.25 });
  expect(new Date(entry.time as string).toISOString()).toBe(entry.time);
});

test("each level writes its name, and lines under the logger's level are dropped", () => {
  const { log, lines } = capture("warn");
  log.debug("d");
  log.info("i");
  log.warn("w");
  log.error("e", { error: "Error: boom\n    at x" });
  expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
    { time: expect.any(String), level: "warn", msg: "w" },
    { time: expect.any(String), level: "error", msg: "e", error: "Error: boom\n    at x" },
  ]);
  const all = capture("debug");
  all.log.debug("d");
  expect(JSON.parse(all.lines[0]!)).toMatchObject({ level: "debug", msg: "d" });
});

test("authorization headers, connection params and keys are written as [Redacted]", () => {
  const { log, lines } = capture("debug");
  const secret = "sk-0123456789abcdef";
  log.info("upgrade", {
    authorization: `Bearer ${secret}`,
    headers: { authorization: `Bearer ${secret}`, "user-agent": "agent/1" },
    connectionParams: { authorization: `Bearer ${secret}` },
    req: { headers: { authorization: `Bearer ${secret}` } },
    key: secret,
    apiKeys: `[{"name":"a","key":"${secret}"}]`,
  });
  expect(lines.join("")).not.toContain(secret);
  expect(JSON.parse(lines[0]!)).toMatchObject({
    authorization: "[Redacted]",
    headers: { authorization: "[Redacted]", "user-agent": "agent/1" },
    connectionParams: { authorization: "[Redacted]" },
    req: { headers: { authorization: "[Redacted]" } },
    key: "[Redacted]",
    apiKeys: "[Redacted]",
  });
});
