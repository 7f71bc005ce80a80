// Proves that a Redis that lost its script cache under an open connection (SCRIPT FLUSH here; a node restarted or promoted on a cluster does the same) costs nothing: the next writes and reads are answered as usual.
import { Cluster } from "ioredis";
import { expect, test } from "vitest";
import { AllocateDocument, CreateContextDocument, GetContextDocument, PatchContextHeadDocument } from "../gql/graphql.js";
import { useTestServer } from "../helpers/app.js";

const server = useTestServer();

test("after SCRIPT FLUSH, concurrent writes and reads succeed, each applied once", async () => {
  await server.data(CreateContextDocument, { id: "flushed", document: { n: {}, resources: { limits: { credits: 100 } } } });
  const redis = server.redis as unknown as Cluster;
  if (redis instanceof Cluster) await redis.ping();
  for (const node of redis instanceof Cluster ? redis.nodes("master") : [server.redis]) await node.script("FLUSH");
  // Sent together, so that they share the client's auto-pipeline, as under load.
  const answers = await Promise.all([
    ...[0, 1, 2, 3].map((i) => server.request(PatchContextHeadDocument, { id: "flushed", patch: [{ op: "add", path: `/n/${i}`, value: i }] })),
    server.request(AllocateDocument, { contextId: "flushed", request: [{ kind: "credits", amount: 5 }], mode: "EXACT" }),
    server.request(GetContextDocument, { id: "flushed" }),
  ]);
  expect(answers.map((a) => a.errors ?? null)).toEqual(answers.map(() => null));
  const { context } = await server.data(GetContextDocument, { id: "flushed" });
  expect(context!.document).toEqual({ n: { 0: 0, 1: 1, 2: 2, 3: 3 }, resources: { limits: { credits: 100 } } });
  expect(context!.version).toBe(5);
});
