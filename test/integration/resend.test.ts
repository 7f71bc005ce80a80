// Proves that a write without an opId whose reply is lost when the connection drops, and which ioredis resends after reconnecting, is applied once and answered with its first outcome (DESIGN.md Redis rule 3).
import { afterAll, beforeAll, expect, inject, test } from "vitest";
import {
  AcquireLockDocument,
  AllocateDocument,
  CreateContextDocument,
  DeleteContextDocument,
  GetContextDocument,
  GetHistoryDocument,
  GetLedgerDocument,
  MergeContextDocument,
  PatchContextDocument,
  ReleaseDocument,
  ReleaseLockDocument,
  RenewAllocationDocument,
  RenewLockDocument,
  ReportUsageDocument,
  RollbackContextDocument,
} from "../gql/graphql.js";
import { useTestServer, type GraphQLResponse } from "../helpers/app.js";
import { ledgerViolations } from "../../support/ledger-invariant.js";
import { startReplyDroppingProxy, type ReplyDroppingProxy } from "../helpers/reply-dropping-proxy.js";

let proxy: ReplyDroppingProxy;
beforeAll(async () => {
  proxy = await startReplyDroppingProxy(Number(new URL(inject("redisUrl")).port));
});
afterAll(async () => {
  await proxy.close();
});
// No sweeper: its commands would share the connection whose reply the proxy drops.
const server = useTestServer(() => ({ redisUrl: proxy.url, leaseSweepMs: 0 }));

/** Sends a mutation while the proxy loses the reply of the script that applies it. */
async function withLostReply<T>(send: () => Promise<GraphQLResponse<T>>): Promise<T> {
  const dropped = proxy.dropNextReplyContaining('"ok":true');
  const res = await send();
  await dropped;
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!;
}

const kinds = async (id: string) => (await server.data(GetHistoryDocument, { id })).context!.history.map((e) => e.kind);
const credits = (n: number) => [{ kind: "credits", amount: n }];

test("document writes: create, patch, merge, rollback and delete apply once", async () => {
  const id = "resend-doc";
  const created = (await withLostReply(() => server.request(CreateContextDocument, { id, document: { n: 0 } }))).createContext;
  expect(created.version).toBe(1);
  await withLostReply(() => server.request(PatchContextDocument, { id, patch: [{ op: "add", path: "/list", value: [] }] }));
  await withLostReply(() => server.request(PatchContextDocument, { id, patch: [{ op: "add", path: "/list/-", value: "x" }] }));
  await withLostReply(() => server.request(MergeContextDocument, { id, merge: { n: 1 } }));
  const rolled = (await withLostReply(() => server.request(RollbackContextDocument, { id, toVersion: 2 }))).rollbackContext;
  expect(rolled.version).toBe(5);
  expect((await server.data(GetContextDocument, { id })).context).toMatchObject({ version: 5, document: { n: 0, list: [] } });
  expect(await kinds(id)).toEqual(["CREATED", "UPDATED", "UPDATED", "UPDATED", "ROLLED_BACK"]);
  const deleted = (await withLostReply(() => server.request(DeleteContextDocument, { id }))).deleteContext;
  expect(deleted).toMatchObject({ version: 5, seq: 6 });
});

test("ledger writes: allocate, reportUsage, renew and release apply once", async () => {
  const id = "resend-ledger";
  await server.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 100 } } } });
  const a = (await withLostReply(() => server.request(AllocateDocument, { contextId: id, request: credits(40), mode: "EXACT" }))).allocate;
  const used = (await withLostReply(() => server.request(ReportUsageDocument, { allocationId: a.id, usage: credits(15) }))).reportUsage;
  expect(used.consumed).toEqual(credits(15));
  await withLostReply(() => server.request(RenewAllocationDocument, { allocationId: a.id, leaseMs: 60_000 }));
  const released = (await withLostReply(() => server.request(ReleaseDocument, { allocationId: a.id, usage: credits(5) }))).release;
  expect(released).toMatchObject({ status: "RELEASED", consumed: credits(20) });
  const { context } = await server.data(GetLedgerDocument, { id });
  expect(context!.allocations.edges.map(({ node }) => node).map((x) => x.id)).toEqual([a.id]);
  expect(context!.budget.consumed).toEqual(credits(20));
  expect(await kinds(id)).toEqual(["CREATED", "ALLOCATED", "USAGE_REPORTED", "RENEWED", "RELEASED"]);
  expect(await ledgerViolations(server.redis, server.config.keyPrefix, id)).toEqual([]);
});

test("locks: acquire, renew and release apply once", async () => {
  const id = "resend-locks";
  await server.data(CreateContextDocument, { id, document: {} });
  const lock = (await withLostReply(() => server.request(AcquireLockDocument, { contextId: id, name: "w", holder: "h", leaseMs: 60_000 }))).acquireLock;
  expect(lock.token).toBe(1);
  await withLostReply(() => server.request(RenewLockDocument, { contextId: id, name: "w", token: 1, leaseMs: 60_000 }));
  await withLostReply(() => server.request(ReleaseLockDocument, { contextId: id, name: "w", token: 1 }));
  expect(await kinds(id)).toEqual(["CREATED", "LOCK_ACQUIRED", "LOCK_RELEASED"]);
});
