// Proves what one request may load and carry: a context's allocations are read a page at a time, each row once per page that shows it (not the ledger once per parent), the bytes one response reads are bounded by SWARM_MAX_RESPONSE_BYTES and refused with LIMIT_EXCEEDED naming it, history (both ways, filtered or not) gives a shorter page rather than pass the bound, and each subscription event is a response of its own.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { parse } from "graphql";
import { describe, expect, test } from "vitest";
import { startTestServer, useTestServer, type GraphQLResponse } from "../helpers/app.js";
import { watchCommands } from "../helpers/monitor.js";
import { subscribe, TRANSPORTS } from "../helpers/feed-client.js";

const MAX_RESPONSE_BYTES = 65_536;

const server = useTestServer({ maxResponseBytes: MAX_RESPONSE_BYTES });

type Data = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const doc = (query: string) => parse(query) as TypedDocumentNode<Data, Record<string, unknown>>;
const request = (query: string, variables: Record<string, unknown> = {}) => server.request(doc(query), variables);
const data = (query: string, variables: Record<string, unknown> = {}) => server.data(doc(query), variables);

let contexts = 0;
async function createContext(document: unknown): Promise<string> {
  const id = `bounds-${process.pid}-${++contexts}`;
  await data("mutation($id: ID!, $d: JSON!) { createContext(id: $id, document: $d) { id } }", { id, d: document });
  return id;
}

/** `count` allocations of `amount` credits under `parentId` (or the budget), 30 per request. */
async function allocateMany(contextId: string, count: number, parentId: string | null = null, amount = 1): Promise<string[]> {
  const ids: string[] = [];
  for (let done = 0; done < count; done += 30) {
    const batch = Array.from({ length: Math.min(30, count - done) }, (_, i) =>
      `a${i}: allocate(contextId: $c, parentId: $p, request: [{ kind: "credits", amount: ${amount} }], mode: EXACT) { id }`,
    );
    const result = await data(`mutation($c: ID!, $p: ID) { ${batch.join(" ")} }`, { c: contextId, p: parentId });
    ids.push(...Object.values(result).map((a: { id: string }) => a.id));
  }
  return ids;
}

/** Calls of one Redis command so far (INFO commandstats). */
async function calls(command: string): Promise<number> {
  const info = await server.redis.info("commandstats");
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
}

function expectResponseBytesExceeded(result: GraphQLResponse<unknown>): void {
  expect(result.errors?.length, JSON.stringify(result).slice(0, 500)).toBeGreaterThan(0);
  for (const error of result.errors!) {
    expect(error.extensions).toMatchObject({ code: "LIMIT_EXCEEDED", limit: "responseBytes", max: MAX_RESPONSE_BYTES });
    expect(error.message).toContain("SWARM_MAX_RESPONSE_BYTES");
  }
}

describe("a context's allocations", () => {
  test("are read a page at a time: each allocation once per page that shows it, however many parents ask for their children", async () => {
    const id = await createContext({ resources: { limits: { credits: 1_000_000 } } });
    const parents = await allocateMany(id, 10, null, 1000);
    const children = await allocateMany(id, 20, parents[0], 10);
    const grandchildren = await allocateMany(id, 10, children[3]);
    const before = await calls("hgetall");
    const { context } = await data(
      `query($id: ID!) { context(id: $id) { allocations(first: 50) { edges { node { id children(first: 20) { edges { node { id children(first: 10) { edges { node { id } } } } } } } } } } }`,
      { id },
    );
    const hgetalls = (await calls("hgetall")) - before;
    type Node = { id: string; children: { edges: { node: Node }[] } };
    const nodes = (c: { edges: { node: Node }[] }) => c.edges.map((e) => e.node);
    const all = nodes(context.allocations);
    // 40 on the first page, 30 children pages' rows (parents[0]'s 20, children[3]'s 10), and
    // children[3]'s 10 again one level down: one read per row shown, not the ledger per parent.
    const shown = all.length + all.reduce((sum, a) => sum + nodes(a.children).length + nodes(a.children).reduce((s2, c) => s2 + nodes(c.children).length, 0), 0);
    expect(shown).toBe(80);
    expect(hgetalls).toBe(shown);
    const byId = new Map(all.map((a) => [a.id, a]));
    expect(all.map((a) => a.id)).toEqual([...parents, ...children, ...grandchildren]);
    expect(nodes(byId.get(parents[0]!)!.children).map((c) => c.id)).toEqual(children);
    expect(nodes(nodes(byId.get(parents[0]!)!.children)[3]!.children).map((c) => c.id)).toEqual(grandchildren);
    expect(nodes(byId.get(parents[1]!)!.children)).toEqual([]);
  });

  test("a mutation after a read sees what the one before it wrote", async () => {
    const id = await createContext({ resources: { limits: { credits: 1_000_000 } } });
    const [parent] = await allocateMany(id, 1, null, 10);
    const { first, second } = await data(
      `mutation($id: ID!, $p: ID!) {
        first: allocate(contextId: $id, parentId: $p, request: [{ kind: "credits", amount: 1 }], mode: EXACT) { parent { children { totalCount edges { node { id } } } } }
        second: allocate(contextId: $id, parentId: $p, request: [{ kind: "credits", amount: 1 }], mode: EXACT) { id parent { children { totalCount edges { node { id } } } } }
      }`,
      { id, p: parent },
    );
    expect(first.parent.children.edges).toHaveLength(1);
    expect(first.parent.children.totalCount).toBe(1);
    expect(second.parent.children.edges.map((e: { node: { id: string } }) => e.node.id)).toContain(second.id);
    expect(second.parent.children.edges).toHaveLength(2);
    expect(second.parent.children.totalCount).toBe(2);
  });

  test("a page that weighs more than the bound is refused when it is read, before anything under it", async () => {
    const id = await createContext({ resources: { limits: { credits: 1_000_000 } } });
    await allocateMany(id, 240); // about 400 bytes each
    const before = await calls("hgetall");
    const result = await request(`query($id: ID!) { context(id: $id) { allocations(first: 240) { edges { node { id children { edges { node { id } } } } } } } }`, { id });
    expectResponseBytesExceeded(result);
    // Reading stops at the page that passes the bound: its children are never read.
    expect((await calls("hgetall")) - before).toBeLessThanOrEqual(240);
  });
});

describe("the cost of one request", () => {
  test("counts list sizes given as variables with each request's values, though the document is the same", async () => {
    const query = "query($f: Int, $l: Int) { contexts(first: $f) { edges { node { id history(limit: $l) { seq } } } } }";
    const small = await request(query, { f: 5, l: 10 });
    expect(small.errors).toBeUndefined();
    const big = await request(query, { f: 500, l: 1000 });
    expect(big.errors?.[0]?.extensions).toMatchObject({ code: "LIMIT_EXCEEDED", limit: "cost", actual: 501_502 });
    expect((await request(query, { f: 5, l: 10 })).errors).toBeUndefined();
  });
});

describe("the bytes of one response", () => {
  test("aliased reads of a document past the bound: LIMIT_EXCEEDED naming SWARM_MAX_RESPONSE_BYTES", async () => {
    const id = await createContext({ blackboard: { text: "x".repeat(20_000) } });
    const three = await data(`query($id: ID!) { context(id: $id) { a: document b: document c: document } }`, { id });
    expect(three.context.c.blackboard.text).toHaveLength(20_000);
    expectResponseBytesExceeded(await request(`query($id: ID!) { context(id: $id) { ${Array.from({ length: 4 }, (_, i) => `d${i}: document`).join(" ")} } }`, { id }));
    expectResponseBytesExceeded(await request(`query($id: ID!) { context(id: $id) { ${Array.from({ length: 4 }, (_, i) => `v${i}: value(path: "/blackboard")`).join(" ")} } }`, { id }));
    expectResponseBytesExceeded(await request(`query($id: ID!) { context(id: $id) { ${Array.from({ length: 4 }, (_, i) => `s${i}: slice(paths: ["/blackboard/text"])`).join(" ")} } }`, { id }));
    expectResponseBytesExceeded(await request(`query($id: ID!) { context(id: $id) { ${Array.from({ length: 4 }, (_, i) => `s${i}: snapshot(version: 1)`).join(" ")} } }`, { id }));
  });

  test("history stops short of the bound (at least one entry); an entry that does not fit is refused", async () => {
    const id = await createContext({ blackboard: {} });
    for (let i = 0; i < 10; i++) {
      await data(`mutation($id: ID!, $p: [JSONPatchOperation!]!) { patchContext(id: $id, patch: $p) { version } }`, {
        id,
        p: [{ op: "add", path: `/blackboard/p${i}`, value: `${i}`.repeat(20_000) }],
      });
    }
    const page = (await data(`query($id: ID!) { context(id: $id) { history(limit: 1000) { seq patch } } }`, { id })).context.history;
    // CREATED, then 3 of the 20 KB patches fit in 64 KiB.
    expect(page.map((e: { seq: number }) => e.seq)).toEqual([1, 2, 3, 4]);
    const next = (await data(`query($id: ID!, $after: Int) { context(id: $id) { history(afterSeq: $after, limit: 1000) { seq } } }`, { id, after: 4 })).context.history;
    expect(next.map((e: { seq: number }) => e.seq)).toEqual([5, 6, 7]);
    // Newest first alike; a filter's scan counts the bytes of what it reads, matching or not,
    // and says where it stopped.
    const newest = (await data(`query($id: ID!) { context(id: $id) { history(last: 1000) { seq } } }`, { id })).context.history;
    expect(newest.map((e: { seq: number }) => e.seq)).toEqual([11, 10, 9]);
    const scan = `query($id: ID!, $before: Int) { context(id: $id) { historyPage(beforeSeq: $before, last: 1000, kinds: [CREATED]) { changes { seq } scannedTo hasMore } } }`;
    expect((await data(scan, { id })).context.historyPage).toEqual({ changes: [], scannedTo: 9, hasMore: true });
    expect((await data(scan, { id, before: 3 })).context.historyPage).toEqual({ changes: [{ seq: 1 }], scannedTo: 1, hasMore: false });
    // Aliases read one after another, each with what the response may still carry: the second
    // gets the small CREATED entry only; a third, whose first entry no longer fits, is refused.
    const two = (await data(`query($id: ID!) { context(id: $id) { a: history(limit: 1000) { seq } b: history(limit: 1000) { seq } } }`, { id })).context;
    expect([two.a.length, two.b.map((e: { seq: number }) => e.seq)]).toEqual([4, [1]]);
    expectResponseBytesExceeded(
      await request(`query($id: ID!) { context(id: $id) { a: history(limit: 1000) { seq } b: history(afterSeq: 4, limit: 1000) { seq } } }`, { id }),
    );
  });

  test.each(TRANSPORTS)("each subscription event is a response of its own (%s)", async (transport) => {
    const id = await createContext({ resources: { limits: { credits: 1_000_000 } } });
    const [parent] = await allocateMany(id, 1, null, 1000);
    await allocateMany(id, 100, parent); // children of about 40 KB
    const { context } = await data(`query($id: ID!) { context(id: $id) { seq } }`, { id });
    // Each event reads the parent's children, as they are then (one allocation more each time):
    // three together pass the bound.
    const feed = subscribe(
      transport,
      server.url,
      doc(`subscription($after: [CursorInput!]) { contextChanges(after: $after, batch: { maxSize: 1 }) { changes { seq allocation { parent { children(first: 200) { edges { node { id } } } } } } } }`),
      { after: [{ contextId: id, seq: context.seq }] },
    );
    const seqs = () => feed.values.flatMap((v) => v.contextChanges.changes.map((c: { seq: number }) => c.seq));
    for (let i = 1; i <= 3; i++) {
      await allocateMany(id, 1, parent);
      await feed.until(() => seqs().length >= i || feed.errors.length > 0, `event ${i}`);
    }
    expect(feed.errors).toEqual([]);
    expect(seqs()).toEqual([context.seq + 1, context.seq + 2, context.seq + 3]);
    const siblings = feed.values.flatMap((v) =>
      v.contextChanges.changes.map((c: { allocation: { parent: { children: { edges: unknown[] } } } }) => c.allocation.parent.children.edges.length),
    );
    expect(siblings).toEqual([101, 102, 103]);
    feed.close();
  });
});

describe("reading a feed of large entries", () => {
  /** Small bounds, so that a few entries fill a response. */
  const LIMITS = { maxResponseBytes: 1_048_576, maxDocumentBytes: 262_144, maxRequestBytes: 262_144 };
  const small = useTestServer(LIMITS);

  test("one history field reads at most 4 MiB of entries past its first", async () => {
    const roomy = await startTestServer();
    try {
      const id = `bounds-page-${process.pid}`;
      await roomy.data(doc("mutation($id: ID!) { createContext(id: $id, document: {}) { id } }"), { id });
      for (let i = 0; i < 6; i++) {
        await roomy.data(doc("mutation($id: ID!, $p: [JSONPatchOperation!]!) { patchContext(id: $id, patch: $p) { version } }"), {
          id,
          p: [{ op: "add", path: "/x", value: String(i).repeat(900_000) }],
        });
      }
      const page = (await roomy.data(doc("query($id: ID!) { context(id: $id) { history(limit: 1000) { seq } } }"), { id })).context.history;
      // CREATED and four of the 900 KB patches: a fifth would pass 4,194,304 bytes.
      expect(page.map((e: { seq: number }) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      const big = (await roomy.data(doc("query($id: ID!) { context(id: $id) { history(afterSeq: 5, limit: 1) { seq } } }"), { id })).context.history;
      expect(big.map((e: { seq: number }) => e.seq)).toEqual([6]);
    } finally {
      await roomy.close();
    }
  });

  test("asks Redis for no more entries at once than the room left can hold, so it holds at most one beyond what it returns", async () => {
    const id = `bounds-feed-${process.pid}`;
    await small.data(doc("mutation($id: ID!) { createContext(id: $id, document: {}) { id } }"), { id });
    for (let i = 0; i < 12; i++) {
      await small.data(doc("mutation($id: ID!, $p: [JSONPatchOperation!]!) { patchContext(id: $id, patch: $p) { version } }"), {
        id,
        p: [{ op: "add", path: "/x", value: String(i % 10).repeat(200_000) }],
      });
    }
    // MONITOR shows the commands a script runs: each XRANGE's COUNT, and what it read.
    const counts: number[] = [];
    const watch = await watchCommands(server.config.redisUrl, (args) => {
      if (args[0]?.toUpperCase() === "XRANGE" && args[1]?.endsWith(`{ctx:${id}}:feed`) && args[4]?.toUpperCase() === "COUNT") counts.push(Number(args[5]));
    });
    const history = (await small.data(doc("query($id: ID!) { context(id: $id) { history(limit: 1000) { seq } } }"), { id })).context.history;
    await watch.settle();
    watch.stop();
    // CREATED and five of the 200 KB patches fit in 1 MiB; an entry may be up to 589,824 bytes here.
    expect(history.map((e: { seq: number }) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(counts.length).toBeGreaterThan(0);
    expect(Math.max(...counts)).toBeLessThanOrEqual(Math.floor(LIMITS.maxResponseBytes / 589_824) + 1);
    expect(counts.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(history.length + 1);
  });
});

