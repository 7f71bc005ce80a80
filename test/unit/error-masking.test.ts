// Proves that maskError tells a Redis client that gave up on a command, for a lost connection or a stalled Redis (UNAVAILABLE: retry), from an unexpected fault (INTERNAL_SERVER_ERROR), using the errors ioredis itself raises.
import { createServer, type AddressInfo } from "node:net";
import { GraphQLError } from "graphql";
import { Redis, type RedisOptions } from "ioredis";
import { expect, test } from "vitest";
import { maskError } from "../../src/server/error-masking.js";
import { freePort } from "../../support/redis-server.js";

/** How a resolver's error reaches maskError: wrapped by graphql-js with its path. */
const located = (cause: Error) => new GraphQLError(cause.message, { path: ["patchContext"], originalError: cause });

/** How `command` fails on a client for `port` (default: a free one, where nothing listens). */
async function failureOf(command: (redis: Redis) => Promise<unknown>, options: RedisOptions, port?: number): Promise<Error> {
  const redis = new Redis(port ?? (await freePort()), "127.0.0.1", { lazyConnect: true, ...options });
  redis.on("error", () => undefined);
  try {
    await command(redis);
    throw new Error("the command did not fail");
  } catch (err) {
    return err as Error;
  } finally {
    redis.disconnect();
  }
}

test("a command ioredis gave up on, for want of a connection or of an answer, is UNAVAILABLE with its path", async () => {
  // Nothing listens on the port: the command fails once its resend attempts are spent...
  const exhausted = await failureOf((r) => r.get("k"), { maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  expect(exhausted.name).toBe("MaxRetriesPerRequestError");
  // ...or at once, on a connection already closed (a request still running while the server shuts down).
  const closed = await failureOf((r) => (r.disconnect(), r.get("k")), {});
  expect(closed.message).toBe("Connection is closed.");
  // ...or when a peer that accepted the connection never answers (a stalled Redis).
  const silent = createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const stalled = await failureOf((r) => r.get("k"), { enableReadyCheck: false, commandTimeout: 50 }, (silent.address() as AddressInfo).port);
  silent.close();
  expect(stalled.message).toBe("Command timed out");
  for (const cause of [exhausted, closed, stalled]) {
    const masked = maskError(located(cause), "Unexpected error.") as GraphQLError;
    expect(masked.extensions).toEqual({ code: "UNAVAILABLE" });
    expect(masked.path).toEqual(["patchContext"]);
    expect(masked.message).toMatch(/unknown: retry/);
  }
});

test("any other fault is INTERNAL_SERVER_ERROR, its cause kept for the log but not in the message", () => {
  const masked = maskError(located(new SyntaxError("Unexpected token")), "Unexpected error.") as GraphQLError;
  expect(masked.extensions).toEqual({ code: "INTERNAL_SERVER_ERROR" });
  expect(masked.message).toBe("Unexpected error.");
  expect(masked.originalError).toBeInstanceOf(SyntaxError);
});
