// Proves the client's retries: a write whose reply is lost is sent again with the same opId and applied once; a dead endpoint in the url list is passed over for the next; when every attempt fails the error is UNAVAILABLE with the last cause.
import { createServer } from "node:net";
import { expect, test } from "vitest";
import { SwarmError } from "swarm-context/client";
import { GetHistoryDocument } from "../gql/graphql.js";
import { useTestServer } from "../helpers/app.js";
import { useClients } from "../helpers/clients.js";
import { collect } from "../helpers/collect.js";
import { startReplyDroppingProxy } from "../helpers/reply-dropping-proxy.js";

const server = useTestServer();
const client = useClients({ retry: { baseDelayMs: 10, maxDelayMs: 50 } });

/** A port on 127.0.0.1 where nothing listens (it was free a moment ago). */
async function deadPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

test("a patch, a merge and an update whose replies are lost are each applied once", async () => {
  const id = "client-retry-dropped";
  await client(server.url).swarm(id).create({ list: [] });
  const proxy = await startReplyDroppingProxy(Number(new URL(server.url).port));
  try {
    const swarm = client(`http://127.0.0.1:${proxy.port}/graphql`).swarm(id);
    // Appends, which a second application would repeat.
    const lost = [proxy.dropNextReplyContaining('"patchContext"')];
    expect(await swarm.patch([{ op: "add", path: "/list/-", value: "patch" }])).toEqual({ version: 2, seq: 2 });
    lost.push(proxy.dropNextReplyContaining('"mergeContext"'));
    expect(await swarm.merge({ merged: true })).toEqual({ version: 3, seq: 3 });
    lost.push(proxy.dropNextReplyContaining('"patchContext"'));
    expect(await swarm.update(() => [{ op: "add", path: "/list/-", value: "update" }])).toEqual({ version: 4, seq: 4 });
    await Promise.all(lost); // each reply was indeed lost once
    expect(await swarm.value("/list")).toEqual(["patch", "update"]);
    const { context } = await server.data(GetHistoryDocument, { id });
    expect(context!.history.map((c) => [c.seq, c.kind, c.paths])).toEqual([
      [1, "CREATED", [""]],
      [2, "UPDATED", ["/list/-"]],
      [3, "UPDATED", ["/merged"]],
      [4, "UPDATED", ["/list/-"]],
    ]);
  } finally {
    await proxy.close();
  }
});

test("a dead endpoint first in the list: reads, writes and watches go to the next", async () => {
  const id = "client-retry-failover";
  const swarm = client([`http://127.0.0.1:${await deadPort()}/graphql`, server.url]).swarm(id);
  await swarm.create({});
  const changes = collect(swarm.watch());
  await swarm.merge({ a: 1 });
  await changes.until((items) => items.length === 1, "the change");
  expect(await swarm.value("/a")).toBe(1);
});

test("when every attempt fails: UNAVAILABLE after the configured attempts, with the last failure as cause", async () => {
  const c = client(`http://127.0.0.1:${await deadPort()}/graphql`, { retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 } });
  const error = await c.swarm("any").merge({ a: 1 }).catch((err: unknown) => err);
  expect(error).toBeInstanceOf(SwarmError);
  expect(error).toMatchObject({ code: "UNAVAILABLE", message: expect.stringContaining("failed 3 times") });
  expect((error as SwarmError).cause).toBeInstanceOf(SwarmError);
});
