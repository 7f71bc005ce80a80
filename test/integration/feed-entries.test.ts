// Proves each change writes exactly one change-feed entry in the context's Redis stream, with a gap-free seq and the kind, paths, patch, actor, reason and time of the change, so that replaying the patches rebuilds the document.
import { expect, test } from "vitest";
import { applyPatch, type PatchOperation } from "../../src/json/patch.js";
import type { JsonValue } from "../../src/json/types.js";
import {
  CreateContextDocument,
  DeleteContextDocument,
  GetHistoryDocument,
  GetSnapshotDocument,
  MergeContextDocument,
  PatchContextDocument,
  RollbackContextDocument,
} from "../gql/graphql.js";
import { useTestServer } from "../helpers/app.js";

const server = useTestServer();

test("one stream entry per change, seq gap-free, with the paths each change touched", async () => {
  const id = "feed-1";
  await server.data(CreateContextDocument, { id, document: { policy: { mode: "a" }, blackboard: { notes: [] } }, reason: "start" });
  await server.data(PatchContextDocument, {
    id,
    patch: [
      { op: "test", path: "/policy/mode", value: "a" },
      { op: "add", path: "/blackboard/notes/-", value: "hi" },
      { op: "move", from: "/policy/mode", path: "/policy/kind" },
    ],
    reason: "note",
  });
  await server.data(MergeContextDocument, { id, merge: { policy: { kind: null, budget: 3 }, execution: { step: 1 } } });
  await server.data(RollbackContextDocument, { id, toVersion: 2 });
  await server.data(DeleteContextDocument, { id });

  const stream = await server.redis.xrange(`${server.config.keyPrefix}:{ctx:${id}}:feed`, "-", "+");
  expect(stream.map(([entryId]) => entryId)).toEqual(["1-0", "2-0", "3-0", "4-0", "5-0"]);

  await server.data(CreateContextDocument, { id, document: { again: true } });
  const { context } = await server.data(GetHistoryDocument, { id });
  const history = context!.history;
  expect(history.map((e) => [e.seq, e.version, e.kind])).toEqual([
    [1, 1, "CREATED"],
    [2, 2, "UPDATED"],
    [3, 3, "UPDATED"],
    [4, 4, "ROLLED_BACK"],
    [5, 4, "DELETED"],
    [6, 1, "CREATED"],
  ]);
  expect(history[0]!.paths).toEqual([""]);
  expect(history[1]!.paths).toEqual(["/blackboard/notes/-", "/policy/mode", "/policy/kind"]);
  expect(history[2]!.paths).toEqual(["/policy/kind", "/policy/budget", "/execution"]);
  // The rollback touched what differs between versions 3 and 2, in no particular order.
  expect([...history[3]!.paths].sort()).toEqual(["/execution", "/policy/budget", "/policy/kind"]);
  expect(history[4]!.paths).toEqual([""]);
  expect(history[5]!.paths).toEqual([""]);
  expect(history.map((e) => e.reason)).toEqual(["start", "note", null, null, null, null]);
  for (const e of history) {
    expect(e.contextId).toBe(id);
    expect(e.actor).toBe("anonymous");
    expect(Date.now() - Date.parse(e.at)).toBeLessThan(60_000);
  }
});

test("replaying the feed's patches in order rebuilds every version of the document", async () => {
  const id = "feed-replay";
  await server.data(CreateContextDocument, { id, document: { a: { b: [1, 2] }, c: "x" } });
  await server.data(PatchContextDocument, { id, patch: [{ op: "copy", from: "/a", path: "/d" }, { op: "remove", path: "/a/b/0" }] });
  await server.data(MergeContextDocument, { id, merge: { c: null, d: { e: { f: 1 } }, g: [3] } });
  await server.data(RollbackContextDocument, { id, toVersion: 1 });
  await server.data(MergeContextDocument, { id, merge: "replaced" as never }).catch(() => undefined);
  await server.data(MergeContextDocument, { id, merge: { z: { y: null } } });

  const { context } = await server.data(GetHistoryDocument, { id });
  let doc: JsonValue = {};
  for (const entry of context!.history) {
    doc = applyPatch(doc, entry.patch as PatchOperation[]).document;
    const { context: at } = await server.data(GetSnapshotDocument, { id, version: entry.version });
    expect(doc).toEqual(at!.snapshot);
  }
  expect(context!.history.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  expect(doc).toEqual({ a: { b: [1, 2] }, c: "x", z: {} });
});
