// Proves that contexts stored by an earlier version of the server (the whole document in meta field `doc`, a full snapshot per version) are moved to the storage by member when a server starts: their document, retained snapshots, diffs and rollback read as before, writes go on, and nothing of the old form is left.
import { expect, test } from "vitest";
import { Redis } from "ioredis";
import { deploymentKeys } from "../../src/server/app.js";
import { GetContextDocument, GetSnapshotDocument, MergeContextDocument, RollbackContextDocument } from "../gql/graphql.js";
import { startTestServer, testConfig, useRedisServer } from "../helpers/app.js";

const redis = useRedisServer();

test("a server moves earlier contexts to the storage by member at start, history included", async () => {
  const config = testConfig({ redisUrl: redis().url });
  const keys = deploymentKeys(config);
  const direct = new Redis(redis().url);
  // First a server of this version writes the deployment's epoch and counters, then the contexts
  // are put back as an earlier version stored them.
  const first = await startTestServer(config);
  await first.close();
  const versions = [
    { a: 1, blackboard: { notes: ["x"] } },
    { a: 1, blackboard: { notes: ["x", "y"] }, added: true },
    { blackboard: { notes: ["x", "y"] }, added: true, "w/e~ird": [1, 2] },
  ];
  const id = "legacy-1";
  const k = keys.context(id);
  await direct.hset(k.meta, { doc: JSON.stringify(versions[2]), version: 4, head: "legacy-head", createdAt: "2026-11-01T00:00:00.000Z", updatedAt: "2026-11-02T00:00:00.000Z", updatedBy: "old", oldestSnapshot: 2 });
  // Version 1 no longer retained; 2 to 4 are (4 the current one, as an earlier version kept it too).
  await direct.hset(k.snapshots, { 2: JSON.stringify(versions[0]), 3: JSON.stringify(versions[1]), 4: JSON.stringify(versions[2]) });
  await direct.set(k.seq, 4);
  await direct.zadd(keys.indexOf(id).contexts, 0, id);
  const server = await startTestServer(config);
  try {
    expect(await direct.hexists(k.meta, "doc")).toBe(0);
    const read = (await server.data(GetContextDocument, { id })).context!;
    expect(read).toMatchObject({ version: 4, document: versions[2] });
    for (const [i, document] of versions.entries()) {
      expect(JSON.stringify((await server.data(GetSnapshotDocument, { id, version: i + 2 })).context!.snapshot)).toBe(JSON.stringify(document));
    }
    expect((await server.request(GetSnapshotDocument, { id, version: 1 })).errors?.[0]?.extensions).toMatchObject({ code: "NOT_FOUND", oldestRetainedVersion: 2 });
    expect((await server.data(MergeContextDocument, { id, merge: { a: 2 } })).mergeContext).toMatchObject({ version: 5, document: { ...versions[2], a: 2 } });
    expect((await server.data(RollbackContextDocument, { id, toVersion: 2 })).rollbackContext).toMatchObject({ version: 6, document: versions[0] });
    expect(JSON.stringify((await server.data(GetSnapshotDocument, { id, version: 3 })).context!.snapshot)).toBe(JSON.stringify(versions[1]));
  } finally {
    await server.close();
    direct.disconnect();
  }
});
