// Proves the allocation policy is bounded as the arguments it stands in for (leases to LEASE_MS_MAX, amounts to safe integers), so a write that would poison a swarm is refused with nothing written, and that every field of every entry the extreme allowed values store reads back unchanged through history, the ledger queries and the feed.
import { parse } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { expect, test } from "vitest";
import {
  AcquireLockDocument,
  AllocateDocument,
  CreateContextDocument,
  GetAllocationDocument,
  GetLedgerDocument,
  MergeContextDocument,
  ReleaseDocument,
  ReleaseLockDocument,
  RenewAllocationDocument,
  RenewLockDocument,
  ReportUsageDocument,
  type AllocationFieldsFragment,
} from "../gql/graphql.js";
import { errorCode, useTestServer } from "../helpers/app.js";
import { subscribe, TRANSPORTS } from "../helpers/feed-client.js";
import { LEASE_MS_MAX } from "../../src/model/identifiers.js";

const MAX = Number.MAX_SAFE_INTEGER;
/** The largest GraphQL Int: maxDepth's bound, and the longest lease a `leaseMs` argument can carry. */
const INT_MAX = 2 ** 31 - 1;

const server = useTestServer();

const ALLOCATION = `id contextId parentId tier path status requested { kind amount } granted { kind amount }
  consumed { kind amount } reserved { kind amount } available { kind amount } holder purpose createdAt expiresAt endedAt`;
const CHANGE = `seq version kind paths patch actor reason at allocation { ${ALLOCATION} } lock { name holder token expiresAt }`;

interface Entry {
  seq: number;
  version: number;
  kind: string;
  paths: string[];
  patch: unknown;
  actor: string;
  reason: string | null;
  at: string;
  allocation: AllocationFieldsFragment | null;
  lock: { name: string; holder: string; token: number; expiresAt: string } | null;
}

const HISTORY = parse(`query($id: ID!) { context(id: $id) { history(afterSeq: 0, limit: 20) { ${CHANGE} } } }`) as TypedDocumentNode<
  { context: { history: Entry[] } | null },
  { id: string }
>;
const FEED = parse(
  `subscription($id: ID!) { contextChanges(contextIds: [$id], after: [{contextId: $id, seq: 0}]) { changes { ${CHANGE} } resync { contextId seq } } }`,
) as TypedDocumentNode<{ contextChanges: { changes: Entry[]; resync: unknown[] } }, { id: string }>;

test.each([
  ["the issue's defaultLeaseMs", { defaultLeaseMs: MAX }, "/policy/allocation/defaultLeaseMs"],
  ["a defaultLeaseMs past the longest lease", { defaultLeaseMs: LEASE_MS_MAX + 1 }, "/policy/allocation/defaultLeaseMs"],
  ["a profile's lease past the longest lease", { profiles: { p: { request: { credits: 1 }, leaseMs: LEASE_MS_MAX + 1 } } }, "/policy/allocation/profiles/p/leaseMs"],
  ["a profile's amount past 2^53 - 1", { profiles: { p: { request: { credits: MAX + 1 } } } }, "/policy/allocation/profiles/p/request/credits"],
  ["a profile's fractional amount", { profiles: { p: { request: { credits: 1.5 } } } }, "/policy/allocation/profiles/p/request/credits"],
  ["a maxDepth past a GraphQL Int", { maxDepth: INT_MAX + 1 }, "/policy/allocation/maxDepth"],
])("%s is refused with its path and nothing written; the swarm still allocates", async (_what, allocation, path) => {
  const id = `bounds-${path.replace(/\W+/g, "-")}-${Object.keys(allocation)[0]}-${Math.random().toString(36).slice(2, 8)}`;
  await server.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 100 } } } });
  const refusal = await server.refused("VALIDATION_FAILED", () =>
    server.request(MergeContextDocument, { id, merge: { policy: { allocation } } }),
  );
  expect(refusal.extensions?.path).toBe(path);
  const created = await server.request(CreateContextDocument, { id: `${id}-new`, document: { policy: { allocation } } });
  expect(errorCode(created)).toBe("VALIDATION_FAILED");
  expect(created.errors![0]!.extensions?.path).toBe(path);
  const granted = await server.data(AllocateDocument, { contextId: id, request: [{ kind: "credits", amount: 1 }], mode: "EXACT" });
  expect(granted.allocate.expiresAt).toBeNull();
});

test("the extreme allowed values read back unchanged through every reader", async () => {
  const id = "bounds-extreme";
  const holder = `"h\u00e9\\${"x".repeat(196)}`;
  const purpose = 'quotes " and \\ and\nnewlines, \u{1F600}';
  await server.data(CreateContextDocument, {
    id,
    document: {
      resources: { limits: { credits: MAX, tokens: MAX } },
      policy: {
        allocation: {
          maxShare: 1,
          maxDepth: INT_MAX,
          defaultLeaseMs: LEASE_MS_MAX,
          profiles: { all: { request: { credits: MAX }, leaseMs: LEASE_MS_MAX } },
        },
      },
    },
  });
  const run = (await server.data(AllocateDocument, { contextId: id, profile: "all", mode: "EXACT", holder, purpose })).allocate;
  const step = (await server.data(AllocateDocument, { contextId: id, parentId: run.id, request: [{ kind: "credits", amount: MAX }], mode: "EXACT" }))
    .allocate;
  const tokens = (
    await server.data(AllocateDocument, { contextId: id, request: [{ kind: "tokens", amount: MAX }], mode: "UP_TO", leaseMs: INT_MAX })
  ).allocate;
  for (const a of [run, step, tokens]) {
    expect(a.granted).toEqual([{ kind: a === tokens ? "tokens" : "credits", amount: MAX }]);
    expect(Date.parse(a.expiresAt!) - Date.parse(a.createdAt)).toBe(a === tokens ? INT_MAX : LEASE_MS_MAX);
  }
  await server.data(ReportUsageDocument, { allocationId: step.id, usage: [{ kind: "credits", amount: MAX }] });
  await server.data(RenewAllocationDocument, { allocationId: run.id, leaseMs: INT_MAX });
  const lockName = `L${"l".repeat(127)}`;
  const lock = (await server.data(AcquireLockDocument, { contextId: id, name: lockName, holder, leaseMs: INT_MAX })).acquireLock;
  await server.data(RenewLockDocument, { contextId: id, name: lockName, token: lock.token, leaseMs: INT_MAX });
  const held = (await server.data(GetLedgerDocument, { id })).context!.locks;
  expect(held).toEqual([{ name: lockName, holder, token: lock.token, expiresAt: held[0]!.expiresAt }]);
  await server.data(ReleaseLockDocument, { contextId: id, name: lockName, token: lock.token });
  const released = (await server.data(ReleaseDocument, { allocationId: run.id })).release;
  expect(released.consumed).toEqual([{ kind: "credits", amount: MAX }]);

  // The hashes' reader (ledger queries) and the entries' reader (history) agree on every field.
  const history = (await server.data(HISTORY, { id })).context!.history;
  expect(history.length).toBeLessThan(20);
  expect(history.map((e) => e.seq)).toEqual(history.map((_, i) => i + 1));
  const ledger = (await server.data(GetLedgerDocument, { id })).context!;
  expect(ledger.budget.consumed).toEqual([{ kind: "credits", amount: MAX }, { kind: "tokens", amount: 0 }]);
  expect(ledger.budget.granted).toEqual([{ kind: "credits", amount: 0 }, { kind: "tokens", amount: MAX }]);
  expect(ledger.allocations.edges.map(({ node: a }) => a).map((a) => a.id)).toEqual([run.id, step.id, tokens.id]);
  for (const { node: a } of ledger.allocations.edges) {
    const last = history.filter((e) => e.allocation?.id === a.id).at(-1)!.allocation;
    expect(last).toEqual(a);
    const { parent: _parent, children: _children, ...byId } = (await server.data(GetAllocationDocument, { id: a.id })).allocation!;
    expect(byId).toEqual(a);
  }
  expect(history.find((e) => e.kind === "ALLOCATED" && e.allocation!.id === run.id)!.allocation).toEqual(run);
  expect(history.filter((e) => e.lock).map((e) => e.lock)).toContainEqual({ name: lockName, holder, token: lock.token, expiresAt: expect.any(String) });

  // Every subscriber, on either transport, gets the same entries from seq 0.
  for (const transport of TRANSPORTS) {
    const feed = subscribe(transport, server.url, FEED, { id });
    try {
      await feed.until((c) => c.values.flatMap((v) => v.contextChanges.changes).length >= history.length || c.errors.length > 0, `${history.length} changes`);
      expect(feed.errors).toEqual([]);
      expect(feed.values.flatMap((v) => v.contextChanges.resync)).toEqual([]);
      expect(feed.values.flatMap((v) => v.contextChanges.changes)).toEqual(history);
    } finally {
      feed.close();
    }
  }
});
