// Proves ledgerRefusals: a ledger refusal made through one server instance reaches that context's subscribers on another instance of the same deployment (over WebSocket and SSE), with what was asked and what was available, and nobody else's; an accepted operation sends nothing; a key outside its scope is FORBIDDEN.
import { print } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { expect, test } from "vitest";
import {
  AllocateDocument,
  CreateContextDocument,
  LedgerRefusalsDocument,
  ReleaseDocument,
  RenewAllocationDocument,
  ReportUsageDocument,
  type LedgerRefusalsSubscription,
} from "../gql/graphql.js";
import { useTestServer, type GraphQLResponse } from "../helpers/app.js";
import { subscribe, type FeedClient } from "../helpers/feed-client.js";
import { testKeys, type TestKey } from "../helpers/keys.js";

const keys = testKeys("in-");
const first = useTestServer({ keys: keys.ring });
// A second instance of the same deployment: same Redis, same key prefix.
const second = useTestServer(() => ({ keys: keys.ring, keyPrefix: first.config.keyPrefix }));

async function as<T, V>(key: TestKey, url: string, document: TypedDocumentNode<T, V>, variables: V): Promise<GraphQLResponse<T>> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: key.authorization },
    body: JSON.stringify({ query: print(document), variables }),
  });
  return (await res.json()) as GraphQLResponse<T>;
}

const codes = (res: GraphQLResponse<unknown>) => res.errors?.map((e) => e.extensions?.code) ?? [];
const credits = (amount: number) => [{ kind: "credits", amount }];
const notices = (feed: FeedClient<LedgerRefusalsSubscription>) => feed.values.map((v) => v.ledgerRefusals);

/** swarm_active_subscriptions on the second instance (read at each scrape, so current). */
async function subscriptionsOnSecond(): Promise<number> {
  const res = await fetch(new URL("/metrics", second.url), { headers: { authorization: keys.admin.authorization } });
  const line = (await res.text()).split("\n").find((l) => l.startsWith("swarm_active_subscriptions "));
  return Number(line?.split(" ")[1] ?? 0);
}

test("a refusal through one instance reaches its context's subscribers on another, and only them; accepted operations send nothing", async () => {
  for (const id of ["in-a", "in-b"]) {
    const created = await as(keys.admin, first.url, CreateContextDocument, { id, document: { resources: { limits: { credits: 100 } } } });
    expect(created.errors).toBeUndefined();
  }
  const onA = subscribe("ws", second.url, LedgerRefusalsDocument, { contextId: "in-a" }, { authorization: keys.viewer.authorization });
  const onB = subscribe("sse", second.url, LedgerRefusalsDocument, { contextId: "in-b" }, { authorization: keys.agent.authorization });
  try {
    await expect.poll(subscriptionsOnSecond).toBe(2);

    // Accepted: no notice. Had one been sent, it would come before the refusal's (one publisher connection, one subscriber connection).
    const run = await as(keys.agent, first.url, AllocateDocument, { contextId: "in-a", request: credits(10), mode: "EXACT", holder: "run-1" });
    expect(run.errors).toBeUndefined();
    const over = await as(keys.agent, first.url, AllocateDocument, { contextId: "in-a", parentId: run.data!.allocate.id, request: credits(11), mode: "EXACT" });
    expect(codes(over)).toEqual(["INSUFFICIENT_RESOURCES"]);
    await onA.until((f) => f.values.length >= 1, "the refusal on in-a");
    expect(notices(onA)).toEqual([
      {
        contextId: "in-a",
        at: expect.any(String),
        actor: keys.agent.name,
        operation: "allocate",
        code: "INSUFFICIENT_RESOURCES",
        message: over.errors![0]!.message,
        allocationId: null,
        parentId: run.data!.allocate.id,
        requested: credits(11),
        available: credits(10),
        dropped: 0,
      },
    ]);

    // A refusal on in-b reaches in-b's subscriber alone; in-a's sees only its own next one (so nothing between).
    const step = await as(keys.agent, first.url, AllocateDocument, { contextId: "in-b", request: credits(5), mode: "EXACT" });
    const spent = await as(keys.agent, first.url, ReportUsageDocument, { allocationId: step.data!.allocate.id, usage: credits(6) });
    expect(codes(spent)).toEqual(["USAGE_EXCEEDED"]);
    const released = await as(keys.agent, first.url, ReleaseDocument, { allocationId: run.data!.allocate.id });
    expect(released.errors).toBeUndefined();
    const renewed = await as(keys.agent, first.url, RenewAllocationDocument, { allocationId: run.data!.allocate.id, leaseMs: 1000 });
    expect(codes(renewed)).toEqual(["ALLOCATION_ENDED"]);

    await onB.until((f) => f.values.length >= 1, "the refusal on in-b");
    expect(notices(onB)).toEqual([
      expect.objectContaining({
        contextId: "in-b",
        operation: "reportUsage",
        code: "USAGE_EXCEEDED",
        allocationId: step.data!.allocate.id,
        parentId: null,
        requested: credits(6),
        available: credits(5),
      }),
    ]);
    await onA.until((f) => f.values.length >= 2, "the second refusal on in-a");
    expect(notices(onA).map((n) => [n.contextId, n.operation, n.code, n.allocationId, n.requested, n.available])).toEqual([
      ["in-a", "allocate", "INSUFFICIENT_RESOURCES", null, credits(11), credits(10)],
      ["in-a", "renewAllocation", "ALLOCATION_ENDED", run.data!.allocate.id, null, null],
    ]);
    expect([onA.errors, onB.errors]).toEqual([[], []]);
  } finally {
    onA.close();
    onB.close();
  }
});

test("a key outside its scope is FORBIDDEN, on both transports", async () => {
  for (const transport of ["ws", "sse"] as const) {
    const feed = subscribe(transport, second.url, LedgerRefusalsDocument, { contextId: "out-a" }, { authorization: keys.agent.authorization });
    await feed.untilEnded();
    expect(feed.errors.map((e) => e.extensions?.code), transport).toEqual(["FORBIDDEN"]);
    expect(feed.values).toEqual([]);
  }
});
