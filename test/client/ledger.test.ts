// Proves the client's allocation handles: a lease is renewed in the background for as long as the handle is held, usage and release reach the ledger, `await using` releases when a step throws, a child is carved from its handle, and a handle whose allocation ends under it is told (lost).
import { expect, test } from "vitest";
import { SwarmError, type AllocationHandle } from "swarm-context/client";
import { GetAllocationDocument, GetLedgerDocument, ReleaseDocument } from "../gql/graphql.js";
import { useTestServer } from "../helpers/app.js";
import { useClients } from "../helpers/clients.js";
import { collect } from "../helpers/collect.js";

const server = useTestServer();
const client = useClients({ agent: "agent-1" });
const swarm = (id: string) => client(server.url).swarm(id);

const budget = async (id: string) => (await server.data(GetLedgerDocument, { id })).context!.budget;

test("a handle renews its lease while held: the allocation outlives its lease many times over", async () => {
  const id = "client-alloc-lease";
  const s = swarm(id);
  await s.create({ resources: { limits: { credits: 100 } } });
  const allocation = await s.allocate({ credits: 40 }, { leaseMs: 300, purpose: "run" });
  expect(allocation.granted).toEqual({ credits: 40 });
  // Wait for five renewals as the feed records them: 500 ms and more past a 300 ms lease.
  const renewals = collect(s.watch({ kinds: ["RENEWED"] }));
  await renewals.until((items) => items.length >= 5, "five renewals");
  expect((await server.data(GetAllocationDocument, { id: allocation.id })).allocation).toMatchObject({ status: "ACTIVE", holder: "agent-1" });
  await allocation.report({ credits: 15 });
  expect(allocation.consumed).toEqual({ credits: 15 });
  await allocation.release({ credits: 5 });
  await allocation.release(); // once only
  expect((await server.data(GetAllocationDocument, { id: allocation.id })).allocation).toMatchObject({ status: "RELEASED", consumed: [{ kind: "credits", amount: 20 }] });
  expect(await budget(id)).toMatchObject({ granted: [{ kind: "credits", amount: 0 }], consumed: [{ kind: "credits", amount: 20 }], available: [{ kind: "credits", amount: 80 }] });
});

test("`await using` releases the allocation and its child when the step throws; refusals are SwarmErrors", async () => {
  const id = "client-alloc-dispose";
  const s = swarm(id);
  await s.create({ resources: { limits: { credits: 100 } } });
  let run: AllocationHandle | undefined;
  let step: AllocationHandle | undefined;
  const failing = async () => {
    await using held = await s.allocate({ credits: 50 });
    run = held;
    step = await held.allocate({ credits: 10 }, { purpose: "step" });
    throw new Error("the step failed");
  };
  await expect(failing()).rejects.toThrow("the step failed");
  expect((await server.data(GetAllocationDocument, { id: run!.id })).allocation!.status).toBe("RELEASED");
  expect((await server.data(GetAllocationDocument, { id: step!.id })).allocation).toMatchObject({ status: "RELEASED", parent: { id: run!.id } });
  expect((await budget(id)).available).toEqual([{ kind: "credits", amount: 100 }]);
  const refusal = await s.allocate({ credits: 101 }).catch((err: unknown) => err);
  expect(refusal).toBeInstanceOf(SwarmError);
  expect(refusal).toMatchObject({ code: "INSUFFICIENT_RESOURCES", extensions: { available: [{ kind: "credits", amount: 100 }] } });
  const partial = await s.allocate({ credits: 101 }, { mode: "UP_TO" });
  expect(partial.granted).toEqual({ credits: 100 });
  await partial.release();
});

test("a handle whose allocation is released by someone else stops renewing and is told", async () => {
  const id = "client-alloc-lost";
  const s = swarm(id);
  await s.create({ resources: { limits: { credits: 100 } } });
  const allocation = await s.allocate({ credits: 10 }, { leaseMs: 300 });
  await server.data(ReleaseDocument, { allocationId: allocation.id });
  expect(await allocation.lost).toMatchObject({ code: "ALLOCATION_ENDED" });
  await allocation.release(); // ended already: nothing to do, no error
});
