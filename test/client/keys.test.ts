// Proves the client presents its key on HTTP and WebSocket (an admin creates, an agent writes, a viewer watches), and that refusals no retry cures end at once: a wrong key (UNAUTHENTICATED) on reads, writes and watches, a context outside the key's scope (FORBIDDEN), watchSlice of a context that does not exist (NOT_FOUND); a viewer may watch but not write.
import { expect, test } from "vitest";
import type { SwarmError } from "swarm-context/client";
import { useTestServer } from "../helpers/app.js";
import { useClients } from "../helpers/clients.js";
import { collect } from "../helpers/collect.js";
import { testKeys } from "../helpers/keys.js";

const keys = testKeys("keyed-");
const server = useTestServer({ keys: keys.ring });
const client = useClients({ retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 } });
const swarm = (key: string, id: string) => client(server.url, { key }).swarm(id);

const code = (promise: Promise<unknown>) => promise.then(
  () => "no error",
  (err: SwarmError) => err.code,
);

async function firstError(iterable: AsyncIterable<unknown>): Promise<string> {
  try {
    for await (const _ of iterable) return "an item";
    return "ended";
  } catch (err) {
    return (err as SwarmError).code;
  }
}

test("an agent key reads, writes and watches in its scope; a viewer watches but may not write", async () => {
  await swarm(keys.admin.key, "keyed-1").create({ n: 0 }); // agents may not create contexts
  const agent = swarm(keys.agent.key, "keyed-1");
  const viewed = collect(swarm(keys.viewer.key, "keyed-1").watch());
  await agent.merge({ n: 1 });
  await viewed.until((items) => items.length === 1, "the change");
  expect(viewed.items[0]).toMatchObject({ seq: 2, actor: "agent-1" });
  expect(await code(swarm(keys.viewer.key, "keyed-1").merge({ n: 2 }))).toBe("FORBIDDEN");
});

test("refusals no retry cures end at once: a wrong key, a context out of scope, a missing context", async () => {
  const wrong = swarm("sc_not-a-key", "keyed-1");
  expect(await code(wrong.value("/n"))).toBe("UNAUTHENTICATED");
  expect(await code(wrong.merge({ n: 3 }))).toBe("UNAUTHENTICATED");
  expect(await firstError(wrong.watch({ after: 0 }))).toBe("UNAUTHENTICATED");
  expect(await firstError(wrong.watchSlice(["/n"]))).toBe("UNAUTHENTICATED");
  const outside = swarm(keys.agent.key, "elsewhere");
  expect(await code(outside.merge({ n: 1 }))).toBe("FORBIDDEN");
  expect(await firstError(outside.watch({ after: 0 }))).toBe("FORBIDDEN");
  expect(await firstError(swarm(keys.agent.key, "keyed-missing").watchSlice(["/n"]))).toBe("NOT_FOUND");
});
