// Proves the client's read-modify-write: 16 agents incrementing one counter with update(fn) through two server instances lose no update, and an update that cannot win says why.
import { expect, test } from "vitest";
import { SwarmError } from "swarm-context/client";
import { useTestServer } from "../helpers/app.js";
import { useClients } from "../helpers/clients.js";

const a = useTestServer();
const b = useTestServer(() => ({ keyPrefix: a.config.keyPrefix }));
const agent = useClients();

test("16 agents x 10 increments with update(fn): the counter is exact, each write one version", async () => {
  const id = "client-counter";
  await agent(a.url).swarm(id).create({ counter: 0, untouched: { big: "x".repeat(1000) } });
  const agents = Array.from({ length: 16 }, (_, i) => agent(i % 2 ? a.url : b.url).swarm(id));
  await Promise.all(
    agents.map(async (swarm) => {
      for (let n = 0; n < 10; n++) await swarm.update((doc) => ({ ...doc, counter: (doc.counter as number) + 1 }));
    }),
  );
  const { version, document } = await agents[0]!.document();
  expect(document.counter).toBe(160);
  expect(version).toBe(161);
});

test("update applies returned JSON Patch operations, skips a write that changes nothing, and gives up with VERSION_CONFLICT after its rounds", async () => {
  const swarm = agent(a.url).swarm("client-update-ops");
  await swarm.create({ list: [] });
  expect(await swarm.update(() => [{ op: "add", path: "/list/-", value: 1 }])).toMatchObject({ version: 2 });
  expect(await swarm.update((doc) => doc)).toMatchObject({ version: 2 });
  const rival = agent(b.url).swarm("client-update-ops");
  let rounds = 0;
  const error = await swarm
    .update(
      async (doc) => {
        rounds++;
        await rival.merge({ rival: rounds }); // every read is stale by the time it is written
        return { ...doc, mine: true };
      },
      { attempts: 3 },
    )
    .catch((err: unknown) => err);
  expect(error).toBeInstanceOf(SwarmError);
  expect(error).toMatchObject({ code: "VERSION_CONFLICT", extensions: { attempts: 3, currentVersion: 5 } });
  expect(rounds).toBe(3);
  expect(await swarm.value("/mine")).toBeNull();
});
