// Proves the ledger's settings keys (limits, allocation policy) always equal what the document says, because the same script that writes the document writes them.
import { expect, test } from "vitest";
import {
  CreateContextDocument,
  DeleteContextDocument,
  MergeContextDocument,
  PatchContextDocument,
  RollbackContextDocument,
} from "../gql/graphql.js";
import { errorCode, useTestServer } from "../helpers/app.js";

const server = useTestServer();

async function settings(id: string) {
  const base = `${server.config.keyPrefix}:{ctx:${id}}`;
  return { limits: await server.redis.hgetall(`${base}:limits`), policy: await server.redis.hgetall(`${base}:policy`) };
}

test("settings follow create, patch, merge, rollback and delete", async () => {
  const id = "settings-1";
  await server.data(CreateContextDocument, {
    id,
    document: {
      resources: { limits: { credits: 100000, tokens: 2000000 } },
      policy: {
        allocation: { maxShare: 0.5, maxDepth: 3, profiles: { llm: { request: { credits: 500, tokens: 20000 }, leaseMs: 60000 } } },
      },
      blackboard: {},
    },
  });
  expect(await settings(id)).toEqual({
    limits: { credits: "100000", tokens: "2000000" },
    policy: { maxShare: "0.5", maxDepth: "3", "profile:llm": "credits,500,tokens,20000", "profileLease:llm": "60000" },
  });

  await server.data(PatchContextDocument, { id, patch: [{ op: "replace", path: "/resources/limits/credits", value: 5 }] });
  expect((await settings(id)).limits).toEqual({ credits: "5", tokens: "2000000" });

  await server.data(MergeContextDocument, { id, merge: { policy: { allocation: { maxShare: null, defaultLeaseMs: 1000 } } } });
  expect((await settings(id)).policy).toEqual({
    maxDepth: "3",
    defaultLeaseMs: "1000",
    "profile:llm": "credits,500,tokens,20000",
    "profileLease:llm": "60000",
  });

  // A change elsewhere leaves them alone; replacing the whole document rewrites them.
  await server.data(PatchContextDocument, { id, patch: [{ op: "add", path: "/blackboard/x", value: 1 }] });
  expect((await settings(id)).limits).toEqual({ credits: "5", tokens: "2000000" });
  await server.data(PatchContextDocument, { id, patch: [{ op: "replace", path: "", value: { resources: { limits: { gpu: 2 } } } }] });
  expect(await settings(id)).toEqual({ limits: { gpu: "2" }, policy: {} });

  await server.data(RollbackContextDocument, { id, toVersion: 1 });
  expect((await settings(id)).limits).toEqual({ credits: "100000", tokens: "2000000" });
  expect((await settings(id)).policy.maxShare).toBe("0.5");

  await server.data(DeleteContextDocument, { id });
  expect(await settings(id)).toEqual({ limits: {}, policy: {} });
});

test("a profile name that could not be stored is refused", async () => {
  const res = await server.request(CreateContextDocument, {
    id: "settings-2",
    document: { policy: { allocation: { profiles: { "two words": { request: { credits: 1 } } } } } },
  });
  expect(errorCode(res)).toBe("VALIDATION_FAILED");
  expect(res.errors![0]!.extensions?.path).toBe("/policy/allocation/profiles/two words");
});
