// Proves the console overview against real Redis: contexts ordered by update time (newest first, ties by id) with updatedAfter, a walk under concurrent writes that returns every context not written during it exactly once, exact totalCount per filter (null only past its bound), pages that read no document, and serverInstances listing every running instance of one Redis, dropping a stopped one at once and a killed one within the heartbeat TTL.
import { inject, describe, expect, test, afterAll } from "vitest";
import type { ChildProcess } from "node:child_process";
import {
  ContextChangesDocument,
  CreateContextDocument,
  DeleteContextDocument,
  OverviewDocument,
  PatchContextDocument,
  ServerInstancesDocument,
  type ContextOrder,
  type OverviewQuery,
} from "../gql/graphql.js";
import { errorCode, startTestServer, useTestServer } from "../helpers/app.js";
import { watchCommands } from "../helpers/monitor.js";
import { Backoff } from "../helpers/backoff.js";
import { dropFromIndex, fileInIndex, readIndex } from "../helpers/indexes.js";
import { subscribe } from "../helpers/feed-client.js";
import { spawnServer } from "../helpers/server-process.js";
import { deploymentKeys } from "../../src/server/app.js";
import { COUNT_SCAN_LIMIT } from "../../src/store/contexts.js";

const server = useTestServer({ heartbeatMs: 50, heartbeatTtlMs: 1_000 });
const keys = () => deploymentKeys(server.config);

interface Walk {
  ids: string[];
  pages: number;
}

/** Every id of a walk through the list, page by page. */
async function walk(vars: { first: number; idPrefix?: string; updatedAfter?: string; orderBy?: ContextOrder }, between?: () => Promise<void>): Promise<Walk> {
  const ids: string[] = [];
  let after: string | null = null;
  let pages = 0;
  for (;;) {
    const { contexts }: OverviewQuery = await server.data(OverviewDocument, { ...vars, after });
    ids.push(...contexts.edges.map((e) => e.node.id));
    pages++;
    if (!contexts.pageInfo.hasNextPage) return { ids, pages };
    if (pages > 200) throw new Error(`the walk did not end after 200 pages: ${ids.slice(-10)}`);
    after = contexts.pageInfo.endCursor!;
    await between?.();
  }
}

async function createAll(ids: readonly string[]): Promise<void> {
  for (const id of ids) await server.data(CreateContextDocument, { id, document: { n: 0 } });
}

describe("contexts by update time", () => {
  test("newest first, updatedAfter filters, a delete leaves the order and the count", async () => {
    await createAll(["upd-a", "upd-b", "upd-c"]);
    const patched = await server.data(PatchContextDocument, { id: "upd-a", patch: [{ op: "replace", path: "/n", value: 1 }] });
    const { contexts } = await server.data(OverviewDocument, { first: 10, idPrefix: "upd-", orderBy: "UPDATED_AT_DESC" });
    expect(contexts.edges.map((e) => e.node.id)).toEqual(["upd-a", "upd-c", "upd-b"]);
    expect(contexts.totalCount).toBe(3);
    const times = contexts.edges.map((e) => Date.parse(e.node.updatedAt));
    expect(times).toEqual([...times].sort((x, y) => y - x));
    expect(contexts.edges[0]!.node).toMatchObject({ version: 2, seq: 2, updatedBy: "anonymous", updatedAt: patched.patchContext.updatedAt });

    const c = contexts.edges[1]!.node.updatedAt;
    const recent = await server.data(OverviewDocument, { first: 10, idPrefix: "upd-", updatedAfter: c, orderBy: "UPDATED_AT_DESC" });
    expect(recent.contexts.edges.map((e) => e.node.id)).toEqual(["upd-a"]);
    expect(recent.contexts.totalCount).toBe(1);
    const byId = await server.data(OverviewDocument, { first: 10, idPrefix: "upd-", updatedAfter: c });
    expect(byId.contexts.edges.map((e) => e.node.id)).toEqual(["upd-a"]);
    expect(byId.contexts.totalCount).toBe(1);

    await server.data(DeleteContextDocument, { id: "upd-c" });
    const after = await server.data(OverviewDocument, { first: 10, idPrefix: "upd-", orderBy: "UPDATED_AT_DESC" });
    expect(after.contexts.edges.map((e) => e.node.id)).toEqual(["upd-a", "upd-b"]);
    expect(after.contexts.totalCount).toBe(2);
    expect(await server.redis.zscore(keys().indexOf("upd-c").byUpdate, "upd-c")).toBeNull();
  });

  test("entries of one time are ordered by id descending, and pages split inside a run of them", async () => {
    const ids = Array.from({ length: 23 }, (_, i) => `tie-${String(i).padStart(2, "0")}`);
    await createAll(ids);
    // The index is a hint Node writes: give groups of ids one time, as many writes in one ms would.
    const score = (i: number) => 1_000_000 + Math.floor(i / 10);
    await fileInIndex(server.redis, keys(), "byUpdate", new Map(ids.map((id, i) => [id, score(i)])));
    const expected = [...ids].sort((a, b) => score(ids.indexOf(b)) - score(ids.indexOf(a)) || (a < b ? 1 : -1));
    for (const first of [1, 3, 7, 10, 23]) {
      const { ids: seen } = await walk({ first, idPrefix: "tie-", orderBy: "UPDATED_AT_DESC" });
      expect(seen, `first ${first}`).toEqual(expected);
    }
  });

  test("a walk under concurrent writes returns every context not written during it exactly once", async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `walk-${String(i).padStart(2, "0")}`);
    await createAll(ids);
    const written = new Set<string>();
    let step = 0;
    const { ids: seen, pages } = await walk({ first: 4, idPrefix: "walk-", orderBy: "UPDATED_AT_DESC" }, async () => {
      // Between pages, write contexts on both sides of the walk's position, some twice.
      const targets = [ids[(step * 7) % ids.length]!, ids[(step * 13 + 5) % ids.length]!];
      step++;
      await Promise.all(
        targets.map(async (id) => {
          written.add(id);
          await server.data(PatchContextDocument, { id, patch: [{ op: "replace", path: "/n", value: step }] });
        }),
      );
    });
    expect(pages).toBeGreaterThan(5);
    expect(new Set(seen).size, `no context twice: ${seen}`).toBe(seen.length);
    for (const id of ids) if (!written.has(id)) expect(seen, id).toContain(id);
  });

  test("a cursor of one order is refused in the other", async () => {
    await createAll(["mix-1", "mix-2"]);
    const { contexts } = await server.data(OverviewDocument, { first: 1, idPrefix: "mix-" });
    const res = await server.request(OverviewDocument, { first: 1, idPrefix: "mix-", after: contexts.pageInfo.endCursor, orderBy: "UPDATED_AT_DESC" });
    expect(errorCode(res)).toBe("VALIDATION_FAILED");
  });
});

describe("totalCount", () => {
  test("is exact per filter from the indexes, and null only when both filters select more than the bound", async () => {
    const k = keys();
    // Index entries are what is counted: seed many without creating contexts.
    const many = Array.from({ length: COUNT_SCAN_LIMIT + 5 }, (_, i) => `many-${String(i).padStart(5, "0")}`);
    await fileInIndex(server.redis, k, "contexts", new Map(many.map((id) => [id, 0])));
    await fileInIndex(server.redis, k, "byUpdate", new Map(many.map((id, i) => [id, 2_000_000 + i])));
    const count = async (vars: { idPrefix?: string; updatedAfter?: string }) =>
      (await server.data(OverviewDocument, { first: 1, ...vars })).contexts.totalCount;
    expect(await count({ idPrefix: "many-" })).toBe(many.length);
    expect(await count({ idPrefix: "many-0000" })).toBe(10);
    expect(await count({ idPrefix: "many-", updatedAfter: new Date(2_000_000 + many.length - 4).toISOString() })).toBe(3);
    expect(await count({ idPrefix: "many-0001", updatedAfter: new Date(0).toISOString() })).toBe(10);
    expect(await count({ idPrefix: "many-", updatedAfter: new Date(0).toISOString() })).toBeNull();
    expect(await count({})).toBe((await readIndex(server.redis, k, "contexts")).size);
    const since = new Date(Date.now() - 60_000).toISOString();
    const recent = [...(await readIndex(server.redis, k, "byUpdate")).values()].filter((at) => at > Date.parse(since));
    expect(await count({ updatedAfter: since })).toBe(recent.length);
    await dropFromIndex(server.redis, k, "contexts", many);
    await dropFromIndex(server.redis, k, "byUpdate", many);
  });
});

describe("a page of 50 contexts", () => {
  test("reads their heads and never a document", async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `head-${String(i).padStart(2, "0")}`);
    for (const id of ids) await server.data(CreateContextDocument, { id, document: { big: "x".repeat(2000) } });
    const commands: string[][] = [];
    // On a Redis Cluster, every node's commands.
    const nodes = server.config.redisClusterNodes?.split(",").map((node) => `redis://${node}`) ?? [server.config.redisUrl];
    const watches = await Promise.all(nodes.map((url) => watchCommands(url, (args) => commands.push(args))));
    // A fresh server of the same deployment: no document is cached in it.
    const other = await startTestServer({ keyPrefix: server.config.keyPrefix });
    try {
      for (const orderBy of ["ID", "UPDATED_AT_DESC"] as const) {
        const { contexts } = await other.data(OverviewDocument, { first: 50, idPrefix: "head-", orderBy });
        expect(contexts.edges).toHaveLength(50);
      }
    } finally {
      await other.close();
      await Promise.all(watches.map((watch) => watch.settle()));
      for (const watch of watches) watch.stop();
    }
    const metaOf = new RegExp(`head-\\d\\d\\}:(meta|snapshots)$`);
    // A document is its members' fields ('."<name>"') and their order (lua/_1-common.lua document_json).
    const documentReads = commands.filter(
      (args) => args.some((a) => metaOf.test(a)) && (args.some((a) => a === "order" || a.startsWith('."')) || /snapshots$/.test(args[1] ?? "")),
    );
    expect(commands.some((args) => args[0]?.toLowerCase() === "hmget" && metaOf.test(args[1] ?? ""))).toBe(true);
    expect(documentReads).toEqual([]);
  });
});

describe("serverInstances", () => {
  const children: ChildProcess[] = [];
  afterAll(() => children.forEach((c) => c.kill("SIGKILL")));

  /** Polls serverInstances until `check` holds of its ids (bounded number of polls). */
  async function instancesUntil(check: (list: { id: string; subscriptions: number; version: string }[]) => boolean, what: string) {
    const backoff = new Backoff(5, 100);
    for (let i = 0; i < 400; i++) {
      const { serverInstances } = await server.data(ServerInstancesDocument);
      if (check(serverInstances)) return serverInstances;
      await backoff.wait();
    }
    throw new Error(`serverInstances never showed ${what}`);
  }

  test("lists every instance on one Redis with its subscriptions; a stopped one leaves at once, a killed one within the TTL", async () => {
    const { serverInstances: alone } = await server.data(ServerInstancesDocument);
    expect(alone).toHaveLength(1);
    expect(alone[0]!.version).toBe("0.1.0");
    const second = await startTestServer({ keyPrefix: server.config.keyPrefix, heartbeatMs: 50, heartbeatTtlMs: 1_000 });
    await server.data(CreateContextDocument, { id: "inst-1", document: {} });
    const feed = subscribe("ws", second.url, ContextChangesDocument, { contextIds: ["inst-1"], after: [{ contextId: "inst-1", seq: 0 }] });
    try {
      await feed.until((f) => f.values.length > 0, "the replay");
      const both = await instancesUntil((list) => list.length === 2 && list.some((i) => i.subscriptions === 1), "two instances, one subscription");
      expect(both.map((i) => i.subscriptions).sort()).toEqual([0, 1]);
    } finally {
      feed.close();
      await second.close();
    }
    // Stopped: gone at the next read, no waiting for the TTL.
    expect((await server.data(ServerInstancesDocument)).serverInstances.map((i) => i.id)).toEqual([alone[0]!.id]);

    const killed = spawnServer(["--port", "0", "--key-prefix", server.config.keyPrefix, "--heartbeat-ms", "50", "--heartbeat-ttl-ms", "300"], {
      ...process.env,
      ...(server.config.redisClusterNodes === null ? { REDIS_URL: inject("redisUrl") } : { REDIS_CLUSTER_NODES: server.config.redisClusterNodes }),
    });
    children.push(killed.child);
    await killed.url;
    await instancesUntil((list) => list.length === 2, "the spawned instance");
    killed.child.kill("SIGKILL");
    await killed.exited;
    const left = await instancesUntil((list) => list.length === 1, "the killed instance gone");
    expect(left.map((i) => i.id)).toEqual([alone[0]!.id]);
  });
});
