// Proves that the ledger's connections read pages from the read indexes the scripts keep: filters by status, tier and holder and children by status give exactly the matching allocations oldest first with totals; cursors and page sizes are validated; a walk under concurrent allocations and releases never returns a row twice nor skips one that matched throughout; a page's nested parents and children cost a constant number of Redis round trips; and activeAllocations and heldLocks count without reading rows.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { execute, parse } from "graphql";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { ResponseReads } from "../../resolvers/response-reads.js";
import type { RequestContext } from "../../resolvers/request-context.js";
import { schema } from "../../schema/index.js";
import { OPEN_PRINCIPAL } from "../../src/security/auth.js";
import { connectRedis } from "../../src/redis/clients.js";
import { Keys } from "../../src/redis/keys.js";
import { ContextStore } from "../../src/store/contexts.js";
import { LedgerStore } from "../../src/store/ledger.js";
import { ledgerViolations } from "../../support/ledger-invariant.js";
import { useTestServer } from "../helpers/app.js";

const server = useTestServer({ leaseSweepMs: 0 });
type Data = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const doc = (query: string) => parse(query) as TypedDocumentNode<Data, Record<string, unknown>>;
const data = (query: string, variables: Record<string, unknown> = {}) => server.data(doc(query), variables);
const request = (query: string, variables: Record<string, unknown> = {}) => server.request(doc(query), variables);

let counter = 0;
const touched = new Set<string>();
afterEach(async () => {
  for (const id of touched) expect(await ledgerViolations(server.redis, server.config.keyPrefix, id)).toEqual([]);
  touched.clear();
});

async function swarm(credits = 1_000_000): Promise<string> {
  const id = `pages-${++counter}`;
  touched.add(id);
  await data("mutation($id: ID!, $d: JSON!) { createContext(id: $id, document: $d) { id } }", { id, d: { resources: { limits: { credits } } } });
  return id;
}

async function allocate(contextId: string, options: { parentId?: string; holder?: string; amount?: number } = {}): Promise<string> {
  const { allocate } = await data(
    "mutation($c: ID!, $p: ID, $h: String, $a: Float!) { allocate(contextId: $c, parentId: $p, holder: $h, request: [{ kind: \"credits\", amount: $a }], mode: EXACT) { id } }",
    { c: contextId, p: options.parentId ?? null, h: options.holder ?? null, a: options.amount ?? 1 },
  );
  return allocate.id;
}

async function release(id: string): Promise<void> {
  await data("mutation($id: ID!) { release(allocationId: $id) { id } }", { id });
}

const CONNECTION = "totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status tier holder } }";
type Edge = { cursor: string; node: { id: string; status: string; tier: number; holder: string | null } };
type Connection = { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: Edge[] };

async function allocationsPage(contextId: string, args: Record<string, unknown>): Promise<Connection> {
  const { context } = await data(
    `query($id: ID!, $first: Int, $after: String, $status: AllocationStatus, $tier: Int, $holder: String) {
      context(id: $id) { allocations(first: $first, after: $after, status: $status, tier: $tier, holder: $holder) { ${CONNECTION} } } }`,
    { id: contextId, ...args },
  );
  return context.allocations;
}

async function childrenPage(allocationId: string, args: Record<string, unknown>): Promise<Connection> {
  const { allocation } = await data(
    `query($id: ID!, $first: Int, $after: String, $status: AllocationStatus) { allocation(id: $id) { children(first: $first, after: $after, status: $status) { ${CONNECTION} } } }`,
    { id: allocationId, ...args },
  );
  return allocation.children;
}

/** Every page of a connection, `first` at a time; the ids in walk order. */
async function walk(page: (after: string | null) => Promise<Connection>): Promise<string[]> {
  const ids: string[] = [];
  for (let after: string | null = null; ; ) {
    const c = await page(after);
    ids.push(...c.edges.map((e) => e.node.id));
    if (!c.pageInfo.hasNextPage) return ids;
    after = c.pageInfo.endCursor;
  }
}

describe("filters and pages", () => {
  test("allocations by status, tier and holder, and children by status: exactly the matching ones, oldest first, with totals", async () => {
    const id = await swarm();
    const a = await allocate(id, { holder: "alice", amount: 100 });
    const b = await allocate(id, { holder: "bob", amount: 100 });
    const c = await allocate(id, { amount: 100 });
    const a1 = await allocate(id, { parentId: a, holder: "alice" });
    const a2 = await allocate(id, { parentId: a, holder: "bob" });
    const a3 = await allocate(id, { parentId: a });
    const b1 = await allocate(id, { parentId: b, holder: "alice" });
    await release(a2);
    await release(b); // b1 with it
    const ids = (c: Connection) => c.edges.map((e) => e.node.id);
    const cases: [Record<string, unknown>, string[]][] = [
      [{}, [a, b, c, a1, a2, a3, b1]],
      [{ status: "ACTIVE" }, [a, c, a1, a3]],
      [{ status: "RELEASED" }, [b, a2, b1]],
      [{ status: "EXPIRED" }, []],
      [{ tier: 2 }, [a, b, c]],
      [{ tier: 3, status: "ACTIVE" }, [a1, a3]],
      [{ holder: "alice" }, [a, a1, b1]],
      [{ holder: "alice", status: "ACTIVE" }, [a, a1]],
      [{ holder: "bob", tier: 3 }, [a2]],
      [{ holder: "nobody" }, []],
    ];
    for (const [args, expected] of cases) {
      const page = await allocationsPage(id, args);
      expect([args, ids(page), page.totalCount]).toEqual([args, expected, expected.length]);
      expect(page.edges.every((e) => (args.status === undefined || e.node.status === args.status) && (args.tier === undefined || e.node.tier === args.tier))).toBe(true);
    }
    expect(ids(await childrenPage(a, {}))).toEqual([a1, a2, a3]);
    expect(ids(await childrenPage(a, { status: "ACTIVE" }))).toEqual([a1, a3]);
    expect(ids(await childrenPage(a, { status: "RELEASED" }))).toEqual([a2]);
    expect((await childrenPage(b, {})).totalCount).toBe(1);
    expect((await childrenPage(c, {})).edges).toEqual([]);
    // Pages of 2, each after the last: every row once, in order, hasNextPage false at the end.
    const pages: string[][] = [];
    for (let after: string | null = null, more = true; more; ) {
      const page: Connection = await allocationsPage(id, { first: 2, after });
      expect(page.totalCount).toBe(7);
      pages.push(ids(page));
      if (page.edges.length > 0) expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)!.cursor);
      more = page.pageInfo.hasNextPage;
      after = page.pageInfo.endCursor;
    }
    expect(pages).toEqual([[a, b], [c, a1], [a2, a3], [b1]]);
    // An edge's cursor continues right after it.
    const second = (await allocationsPage(id, { first: 2 })).edges[1]!;
    expect(ids(await allocationsPage(id, { first: 1, after: second.cursor }))).toEqual([c]);
  });

  test("a cursor that is not one, and a page size outside 1..500: VALIDATION_FAILED naming the argument", async () => {
    const id = await swarm();
    const a = await allocate(id);
    const query = `query($id: ID!, $first: Int, $after: String) {
      context(id: $id) { allocations(first: $first, after: $after) { totalCount } } }`;
    const childQuery = `query($a: ID!, $first: Int, $after: String) { allocation(id: $a) { children(first: $first, after: $after) { totalCount } } }`;
    for (const after of ["nope", "", Buffer.from("alloc:-1").toString("base64url"), Buffer.from("alloc:1x").toString("base64url"), "YWxsb2M6MQ=="]) {
      for (const q of [query, childQuery]) {
        const result = await request(q, q === query ? { id, after } : { a, after });
        expect(result.errors?.[0]?.extensions, `${after}`).toMatchObject({ code: "VALIDATION_FAILED", path: "after" });
      }
    }
    for (const first of [0, -1, 501]) {
      for (const q of [query, childQuery]) {
        expect((await request(q, q === query ? { id, first } : { a, first })).errors?.[0]?.extensions).toMatchObject({ code: "VALIDATION_FAILED", path: "first" });
      }
    }
    expect((await request(query, { id, first: 500 })).errors).toBeUndefined();
  });

  test("activeAllocations counts the ACTIVE ones; heldLocks the locks no operation has released", async () => {
    const id = await swarm();
    const a = await allocate(id);
    await allocate(id, { parentId: a });
    await allocate(id);
    await release(a);
    const locks = "mutation($c: ID!, $n: String!) { acquireLock(contextId: $c, name: $n, holder: \"h\", leaseMs: 60000) { token } }";
    await data(locks, { c: id, n: "one" });
    const { acquireLock } = await data(locks, { c: id, n: "two" });
    const summary = "query($id: ID!) { context(id: $id) { activeAllocations heldLocks } }";
    expect((await data(summary, { id })).context).toEqual({ activeAllocations: 1, heldLocks: 2 });
    await data("mutation($c: ID!, $t: Int!) { releaseLock(contextId: $c, name: \"two\", token: $t) { token } }", { c: id, t: acquireLock.token });
    expect((await data(summary, { id })).context).toEqual({ activeAllocations: 1, heldLocks: 1 });
  });
});

describe("a walk under concurrent writes", () => {
  test("never returns a row twice, never skips one that existed and matched for the whole walk", async () => {
    const id = await swarm();
    const parent = await allocate(id, { amount: 100_000 });
    const seed = await Promise.all(Array.from({ length: 60 }, (_, i) => allocate(id, { parentId: i % 2 ? parent : undefined, holder: i % 3 ? "w" : undefined })));
    const active = async (filter: (n: { id: string; parentId: string | null }) => boolean) => {
      const all = await walk((after) => allocationsPage(id, { first: 500, after, status: "ACTIVE" }));
      const { allocations } = await ledgerNodes(id);
      return new Set(all.filter((x) => filter(allocations.get(x)!)));
    };
    let stop = false;
    // Three writers: each allocates (under the budget or the parent) and releases a random earlier one.
    const writer = async (w: number) => {
      const mine = seed.filter((_, i) => i % 3 === w);
      while (!stop) {
        mine.push(await allocate(id, { parentId: Math.random() < 0.5 ? parent : undefined, holder: Math.random() < 0.5 ? "w" : undefined }));
        const victim = mine.splice(Math.floor(Math.random() * mine.length), 1)[0]!;
        await release(victim);
      }
    };
    const existingBefore = new Set(await walk((after) => allocationsPage(id, { first: 500, after })));
    const activeBefore = await active(() => true);
    const childrenBefore = await active((n) => n.parentId === parent);
    const writers = [0, 1, 2].map(writer);
    // Readers walk with small pages while the writers run.
    const [all, activeWalk, childWalk, holderWalk] = await Promise.all([
      walk((after) => allocationsPage(id, { first: 7, after })),
      walk((after) => allocationsPage(id, { first: 5, after, status: "ACTIVE" })),
      walk((after) => childrenPage(parent, { first: 4, after, status: "ACTIVE" })),
      walk((after) => allocationsPage(id, { first: 3, after, holder: "w", status: "ACTIVE" })),
    ]);
    stop = true;
    await Promise.all(writers);
    const activeAfter = await active(() => true);
    const { allocations } = await ledgerNodes(id);
    const throughout = (before: Set<string>) => [...before].filter((x) => activeAfter.has(x));
    for (const walked of [all, activeWalk, childWalk, holderWalk]) expect(new Set(walked).size).toBe(walked.length);
    // Ascending numbers: the walk's order.
    const numbers = (ids: string[]) => ids.map((x) => Number(x.split("#")[1]));
    for (const walked of [all, activeWalk, childWalk, holderWalk]) expect(numbers(walked)).toEqual([...numbers(walked)].sort((p, q) => p - q));
    expect(all).toEqual(expect.arrayContaining([...existingBefore]));
    expect(activeWalk).toEqual(expect.arrayContaining(throughout(activeBefore)));
    expect(childWalk).toEqual(expect.arrayContaining(throughout(childrenBefore)));
    expect(holderWalk).toEqual(expect.arrayContaining(throughout(activeBefore).filter((x) => allocations.get(x)!.holder === "w")));
    // The writers did change statuses during the walk (else the invariant says little).
    expect(activeBefore.size - throughout(activeBefore).length).toBeGreaterThan(0);
  });
});

/** Every allocation of a context as stored (id -> parentId, holder), read straight from Redis. */
async function ledgerNodes(contextId: string): Promise<{ allocations: Map<string, { id: string; parentId: string | null; holder: string | null }> }> {
  const k = new Keys(server.config.keyPrefix).context(contextId);
  const numbers = await server.redis.zrange(k.allocs, 0, -1);
  const hashes = await Promise.all(numbers.map((n) => server.redis.hgetall(k.alloc(n))));
  return {
    allocations: new Map(
      numbers.map((n, i) => {
        const h = hashes[i]!;
        const node = { id: `${contextId}#${n}`, parentId: h.parent ? `${contextId}#${h.parent}` : null, holder: h.holder || null };
        return [node.id, node];
      }),
    ),
  };
}

describe("nested reads of a page", () => {
  let redis: Redis;
  let writes = 0;
  let context: () => RequestContext;
  beforeAll(async () => {
    redis = await connectRedis({ url: server.config.redisUrl }, "pages-test");
    // Each write to the connection's socket is one round trip's request: ioredis writes a
    // pipeline in one, and each command sent alone in one of its own.
    const stream = (redis as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
    const write = stream.write.bind(stream);
    stream.write = (...args: unknown[]) => {
      writes++;
      return write(...args);
    };
    const keys = new Keys(server.config.keyPrefix);
    const contexts = new ContextStore(redis, keys, server.config);
    const ledger = new LedgerStore(redis, keys, server.config);
    context = () =>
      ({
        contexts,
        ledger,
        principal: OPEN_PRINCIPAL,
        reads: new ResponseReads(server.config.maxResponseBytes),
        state: { whenIntact: () => undefined, current: "intact" },
      }) as unknown as RequestContext;
  });
  afterAll(() => redis.disconnect());

  /** Round trips of one query executed on `redis`, and its data. */
  async function roundTrips(query: string, variables: Record<string, unknown>): Promise<{ trips: number; data: Data }> {
    const before = writes;
    const result = await execute({ schema, document: parse(query), contextValue: context(), variableValues: variables });
    expect(result.errors).toBeUndefined();
    return { trips: writes - before, data: result.data as Data };
  }

  test("parent and children across a page cost the same few round trips for 5 nodes as for 50", async () => {
    const query = `query($id: ID!, $first: Int) { context(id: $id) { allocations(status: ACTIVE, first: $first) {
      edges { node { id parent { id } children(first: 10) { totalCount edges { node { id } } } } } } } }`;
    const id = await swarm();
    // Numbers alternate top, child, so that both pages hold parents and children.
    for (let i = 0; i < 25; i++) await allocate(id, { parentId: await allocate(id, { amount: 100 }) });
    await roundTrips(query, { id, first: 5 }); // the scripts and the document reach this connection's caches
    const five = await roundTrips(query, { id, first: 5 });
    const fifty = await roundTrips(query, { id, first: 50 });
    expect(five.data.context.allocations.edges).toHaveLength(5);
    expect(fifty.data.context.allocations.edges).toHaveLength(50);
    const withChild = fifty.data.context.allocations.edges.filter((e: Data) => e.node.children.totalCount === 1);
    expect(withChild).toHaveLength(25);
    expect(fifty.data.context.allocations.edges.filter((e: Data) => e.node.parent !== null)).toHaveLength(25);
    // context, the page's index range and hashes, then one batch each for parents, children
    // pages (range, hashes) and counts.
    expect(fifty.trips).toBe(five.trips);
    expect(fifty.trips).toBeLessThanOrEqual(7);
  });
});
