// Proves that maskError tells a Redis client that gave up on a command (UNAVAILABLE: retry) from an unexpected fault (INTERNAL_SERVER_ERROR), using the errors ioredis itself raises.
import { GraphQLError } from "graphql";
import { Redis, type RedisOptions } from "ioredis";
import { expect, test } from "vitest";
import { maskError } from "../../src/error-masking.js";
import { freePort } from "../helpers/redis-server.js";

/** How a resolver's error reaches maskError: wrapped by graphql-js with its path. */
const located = (cause: Error) => new GraphQLError(cause.message, { path: ["patchContext"], originalError: cause });

async function failureOf(command: (redis: Redis) => Promise<unknown>, options: RedisOptions): Promise<Error> {
  const redis = new Redis(await freePort(), "127.0.0.1", { lazyConnect: true, ...options });
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

test("a command ioredis gave up on, for want of a connection, is UNAVAILABLE with its path", async () => {
  // Nothing listens on the port: the command fails once its resend attempts are spent...
  const exhausted = await failureOf((r) => r.get("k"), { maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  expect(exhausted.name).toBe("MaxRetriesPerRequestError");
  // ...or at once, on a connection already closed (a request still running while the server shuts down).
  const closed = await failureOf((r) => (r.disconnect(), r.get("k")), {});
  expect(closed.message).toBe("Connection is closed.");
  for (const cause of [exhausted, closed]) {
    const masked = maskError(located(cause), "Unexpected error.") as GraphQLError;
    expect(masked.extensions).toEqual({ code: "UNAVAILABLE" });
    expect(masked.path).toEqual(["patchContext"]);
    expect(masked.message).toMatch(/retry/);
  }
});

test("any other fault is INTERNAL_SERVER_ERROR, its cause kept for the log but not in the message", () => {
  const masked = maskError(located(new SyntaxError("Unexpected token")), "Unexpected error.") as GraphQLError;
  expect(masked.extensions).toEqual({ code: "INTERNAL_SERVER_ERROR" });
  expect(masked.message).toBe("Unexpected error.");
  expect(masked.originalError).toBeInstanceOf(SyntaxError);
});
