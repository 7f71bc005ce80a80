// Proves that member names Object.prototype also has (__proto__, constructor, prototype, toString) are plain data end to end against real Redis: documents, every write, reads, history, the feed and its path filter, and resource kinds and profiles of the ledger.
import { parse, type DocumentNode } from "graphql";
import { describe, expect, test } from "vitest";
import {
  AllocateDocument,
  ContextChangesDocument,
  CreateContextDocument,
  GetContextDocument,
  GetHistoryDocument,
  GetLedgerDocument,
  GetSliceDocument,
  GetSnapshotDocument,
  GetValueDocument,
  MergeContextDocument,
  PatchContextDocument,
  ReportUsageDocument,
  RollbackContextDocument,
} from "../gql/graphql.js";
import { errorCode, useTestServer } from "../helpers/app.js";
import { subscribe, TRANSPORTS } from "../helpers/feed-client.js";
import { jsonEqual, type JsonValue } from "../../src/json/types.js";

const server = useTestServer();
let counter = 0;
const freshId = (label: string) => `${label}-${++counter}`;

/**
 * JSON text parsed as a client's request is: a "__proto__" member is own data. (An object
 * literal in this file would set the prototype instead and never reach the server.)
 */
const json = (text: string) => JSON.parse(text) as JsonValue;

function expectJson(actual: unknown, expected: string): void {
  expect(jsonEqual(actual as JsonValue, json(expected)), `${JSON.stringify(actual)} != ${expected}`).toBe(true);
}

const DOCUMENT = '{"__proto__":{"x":1},"a":{"constructor":{"prototype":{"__proto__":[1]}},"toString":"s"}}';

async function create(text = DOCUMENT): Promise<string> {
  const id = freshId("proto");
  await server.data(CreateContextDocument, { id, document: json(text) });
  return id;
}

async function documentOf(id: string): Promise<unknown> {
  return (await server.data(GetContextDocument, { id })).context!.document;
}

describe("documents", () => {
  test("createContext keeps such members at every depth; value, slice and snapshot read them", async () => {
    const id = await create();
    expectJson(await documentOf(id), DOCUMENT);
    expectJson((await server.data(GetSnapshotDocument, { id, version: 1 })).context!.snapshot, DOCUMENT);
    expectJson((await server.data(GetValueDocument, { id, path: "/__proto__/x" })).context!.value, "1");
    expectJson((await server.data(GetValueDocument, { id, path: "/a/constructor/prototype" })).context!.value, '{"__proto__":[1]}');
    expectJson((await server.data(GetValueDocument, { id, path: "/a/hasOwnProperty" })).context!.value, "null");
    const paths = ["/__proto__", "/a/constructor/prototype/__proto__/0", "/a/valueOf"];
    expectJson((await server.data(GetSliceDocument, { id, paths })).context!.slice, '{"/__proto__":{"x":1},"/a/constructor/prototype/__proto__/0":1,"/a/valueOf":null}');
  });

  test("mergeContext stores a member named __proto__ (the issue's reproduction), and history records what it stored", async () => {
    const id = await create('{"a":{}}');
    await server.data(MergeContextDocument, { id, merge: json('{"a":{"__proto__":{"x":1}}}') });
    expectJson(await documentOf(id), '{"a":{"__proto__":{"x":1}}}');
    const merged = await server.data(MergeContextDocument, { id, merge: json('{"a":{"__proto__":{"y":2},"constructor":{"prototype":3}}}') });
    expectJson(merged.mergeContext.document, '{"a":{"__proto__":{"x":1,"y":2},"constructor":{"prototype":3}}}');
    await server.data(MergeContextDocument, { id, merge: json('{"a":{"__proto__":null}}') });
    expectJson(await documentOf(id), '{"a":{"constructor":{"prototype":3}}}');
    const history = (await server.data(GetHistoryDocument, { id, afterSeq: 1, limit: 10 })).context!.history;
    expect(history.map((c) => c.paths)).toEqual([["/a/__proto__"], ["/a/__proto__/y", "/a/constructor"], ["/a/__proto__"]]);
    expectJson(history[0]!.patch, '[{"op":"add","path":"/a/__proto__","value":{"x":1}}]');
  });

  test("a merge written as a GraphQL literal (not a variable) keeps such members too", async () => {
    const id = await create("{}");
    const literal = parse(`mutation { mergeContext(id: "${id}", merge: {a: {__proto__: {x: 1}, constructor: {prototype: 2}}}) { version } }`);
    const res = await server.request(literal as DocumentNode as typeof MergeContextDocument);
    expect(res.errors).toBeUndefined();
    expectJson(await documentOf(id), '{"a":{"__proto__":{"x":1},"constructor":{"prototype":2}}}');
  });

  test("a merge cannot slip a resource kind or profile named __proto__ past validation", async () => {
    const id = await create("{}");
    for (const merge of [
      '{"resources":{"limits":{"__proto__":{"credits":5}}}}',
      '{"policy":{"allocation":{"profiles":{"__proto__":{"request":{"credits":1}}}}}}',
    ]) {
      const err = await server.refused("VALIDATION_FAILED", () => server.request(MergeContextDocument, { id, merge: json(merge) }));
      expect(err.extensions?.path).toMatch(/\/__proto__$/);
    }
  });

  test("patchContext: add, replace, remove, move, copy and test at and below such members", async () => {
    const id = await create();
    const patch = async (ops: string) => (await server.data(PatchContextDocument, { id, patch: json(ops) as never })).patchContext.document;
    expectJson(
      await patch('[{"op":"test","path":"/__proto__","value":{"x":1}},{"op":"add","path":"/__proto__/prototype","value":{"__proto__":2}}]'),
      '{"__proto__":{"x":1,"prototype":{"__proto__":2}},"a":{"constructor":{"prototype":{"__proto__":[1]}},"toString":"s"}}',
    );
    expectJson(
      await patch('[{"op":"replace","path":"/__proto__/prototype/__proto__","value":3},{"op":"remove","path":"/a/toString"}]'),
      '{"__proto__":{"x":1,"prototype":{"__proto__":3}},"a":{"constructor":{"prototype":{"__proto__":[1]}}}}',
    );
    expectJson(
      await patch('[{"op":"move","from":"/a/constructor","path":"/constructor"},{"op":"copy","from":"/__proto__","path":"/a/__proto__"}]'),
      '{"__proto__":{"x":1,"prototype":{"__proto__":3}},"a":{"__proto__":{"x":1,"prototype":{"__proto__":3}}},"constructor":{"prototype":{"__proto__":[1]}}}',
    );
    const failed = await server.request(PatchContextDocument, { id, patch: json('[{"op":"test","path":"/a/__proto__/x","value":2}]') as never });
    expect(errorCode(failed)).toBe("INVALID_PATCH");
  });

  test("rollback restores such members, and history names the paths it changed", async () => {
    const id = await create();
    await server.data(MergeContextDocument, { id, merge: json('{"__proto__":null,"a":{"constructor":7}}') });
    expectJson(await documentOf(id), '{"a":{"constructor":7,"toString":"s"}}');
    const rolled = await server.data(RollbackContextDocument, { id, toVersion: 1 });
    expectJson(rolled.rollbackContext.document, DOCUMENT);
    const last = (await server.data(GetHistoryDocument, { id, afterSeq: 2, limit: 10 })).context!.history;
    expect(last.map((c) => [c.kind, c.paths])).toEqual([["ROLLED_BACK", ["/__proto__", "/a/constructor"]]]);
  });
});

describe("the feed", () => {
  for (const transport of TRANSPORTS) {
    test(`${transport}: the paths filter matches such members like any other`, async () => {
      const id = await create();
      const feed = subscribe(transport, server.url, ContextChangesDocument, {
        contextIds: [id],
        paths: ["/a/__proto__"],
        after: [{ contextId: id, seq: 1 }],
      });
      try {
        await server.data(MergeContextDocument, { id, merge: json('{"b":1}') });
        await server.data(MergeContextDocument, { id, merge: json('{"a":{"__proto__":{"x":1}}}') });
        await server.data(MergeContextDocument, { id, merge: json('{"__proto__":{"y":2}}') });
        await server.data(PatchContextDocument, { id, patch: json('[{"op":"replace","path":"/a/__proto__/x","value":2}]') as never });
        const changes = () => feed.values.flatMap((v) => v.contextChanges.changes);
        await feed.until(() => changes().some((c) => c.seq === 5), "the last matching change");
        expect(changes().map((c) => [c.seq, c.paths])).toEqual([
          [3, ["/a/__proto__"]],
          [5, ["/a/__proto__/x"]],
        ]);
      } finally {
        feed.close();
      }
    });
  }
});

describe("the ledger", () => {
  const LEDGER_DOCUMENT = `{
    "resources": {"limits": {"constructor": 10, "prototype": 10, "toString": 10, "valueOf": 10}},
    "policy": {"allocation": {"profiles": {
      "constructor": {"request": {"prototype": 2}},
      "toString": {"request": {"valueOf": 1}, "leaseMs": 60000}
    }}}
  }`;

  test("constructor, prototype and toString are plain kinds for budgets, allocate and reportUsage, and plain profile names", async () => {
    const id = await create(LEDGER_DOCUMENT);
    const byRequest = (await server.data(AllocateDocument, { contextId: id, request: [{ kind: "constructor", amount: 3 }], mode: "EXACT" })).allocate;
    expect(byRequest.granted).toEqual([{ kind: "constructor", amount: 3 }]);
    const byProfile = (await server.data(AllocateDocument, { contextId: id, profile: "constructor", mode: "EXACT" })).allocate;
    expect(byProfile.granted).toEqual([{ kind: "prototype", amount: 2 }]);
    const leased = (await server.data(AllocateDocument, { contextId: id, profile: "toString", mode: "EXACT" })).allocate;
    expect(leased.granted).toEqual([{ kind: "valueOf", amount: 1 }]);
    expect(leased.expiresAt).not.toBeNull();
    const used = (await server.data(ReportUsageDocument, { allocationId: byRequest.id, usage: [{ kind: "constructor", amount: 1 }] })).reportUsage;
    expect(used.consumed).toEqual([{ kind: "constructor", amount: 1 }]);
    const { budget } = (await server.data(GetLedgerDocument, { id })).context!;
    expect(budget.granted).toEqual([
      { kind: "constructor", amount: 3 },
      { kind: "prototype", amount: 2 },
      { kind: "toString", amount: 0 },
      { kind: "valueOf", amount: 1 },
    ]);
    expect(budget.available.map((a) => a.amount)).toEqual([7, 8, 10, 9]);
  });

  test("a profile named like an Object.prototype member that is not defined is an unknown profile", async () => {
    const id = await create('{"resources":{"limits":{"credits":10}},"policy":{"allocation":{"profiles":{"llm":{"request":{"credits":1}}}}}}');
    for (const profile of ["constructor", "__proto__", "toString", "prototype", "hasOwnProperty", "valueOf"]) {
      const res = await server.request(AllocateDocument, { contextId: id, profile, mode: "EXACT" });
      expect(errorCode(res), `${profile}: ${JSON.stringify(res.errors)}`).toBe("VALIDATION_FAILED");
      expect(res.errors![0]!.extensions?.path).toBe("profile");
      expect(res.errors![0]!.message).toContain(`has no profile ${profile}`);
    }
  });
});
