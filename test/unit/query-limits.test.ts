// Proves the query limits: depth, aliases, cost and tokens are refused exactly past their bounds with coded LIMIT_EXCEEDED errors, through fragments, without looping on cycles or blowing up on reuse, while every legitimate document passes the defaults.
import { readdirSync, readFileSync } from "node:fs";
import { buildSchema, getIntrospectionQuery, GraphQLError, specifiedRules, validate, type GraphQLSchema } from "graphql";
import { describe, expect, test } from "vitest";
import { schema } from "../../schema/index.js";
import { loadConfig } from "../../src/config.js";
import { costRule, documentLimitRules, MAX_NESTING, parseLimited, sizesFromVariables, type QueryLimits } from "../../src/server/query-limits.js";

const defaults = loadConfig([], {});
/** The server's default limits. */
const L: QueryLimits = {
  maxDepth: defaults.maxQueryDepth,
  maxAliases: defaults.maxAliases,
  maxTokens: defaults.maxTokens,
  maxCost: defaults.maxCost,
  maxFieldRepeats: defaults.maxFieldRepeats,
};

/** Every limit rule, the cost measured with `variables`. */
const limitRules = (limits: QueryLimits, variables: Record<string, unknown> = {}) => [
  ...documentLimitRules(limits),
  costRule(limits.maxCost, variables),
];

/** Every error of validating `src` (with `variables`), as its message plus, for limit errors, its extensions. */
function errors(src: string, limits: QueryLimits = L, against: GraphQLSchema = schema, variables: Record<string, unknown> = {}) {
  const document = parseLimited(src, limits.maxTokens);
  return validate(against, document, [...specifiedRules, ...limitRules(limits, variables)]).map((error) =>
    error.extensions.code ? { message: error.message, ...error.extensions } : { message: error.message },
  );
}

function exceeded(limit: string, max: number, actual: number) {
  const message = `query ${limit === "aliases" ? "alias count" : limit} ${actual} exceeds the limit of ${max}`;
  return [{ message, code: "LIMIT_EXCEEDED", limit, max, actual }];
}

const repeat = (n: number, text: (i: number) => string) => Array.from({ length: n }, (_, i) => text(i)).join(" ");

/** `allocation` (depth 1), then parents, then `id`: depth `depth`. */
const deepQuery = (depth: number) => `{ allocation(id: "a") { ${"parent { ".repeat(depth - 2)}id${" }".repeat(depth - 2)} } }`;

describe("depth", () => {
  test("refused just past maxDepth", () => {
    expect(errors(deepQuery(L.maxDepth - 1))).toEqual([]);
    expect(errors(deepQuery(L.maxDepth))).toEqual([]);
    expect(errors(deepQuery(L.maxDepth + 1))).toEqual(exceeded("depth", L.maxDepth, L.maxDepth + 1));
  });

  test("fragment spreads and inline fragments are expanded and add no depth themselves", () => {
    const src = `
      query { allocation(id: "a") { ...P } }
      fragment P on Allocation { parent { ... on Allocation { parent { ...Q } } } }
      fragment Q on Allocation { ... { parent { id } } }`;
    expect(errors(src, { ...L, maxDepth: 5 })).toEqual([]);
    expect(errors(src, { ...L, maxDepth: 4 })).toEqual(exceeded("depth", 4, 5));
  });

  test("each operation is measured and the deepest is reported on it", () => {
    const src = `query Shallow { health { ok } } query Deep { allocation(id: "a") { parent { parent { id } } } }`;
    const [error] = validate(schema, parseLimited(src, L.maxTokens), limitRules({ ...L, maxDepth: 3 }));
    expect(error?.extensions).toMatchObject({ limit: "depth", actual: 4 });
    expect(error?.locations).toEqual([{ line: 1, column: 33 }]);
  });
});

describe("fragment cycles and undefined fragments", () => {
  test("cycles terminate, graphql reporting them", () => {
    const src = `
      query { allocation(id: "a") { ...A } }
      fragment A on Allocation { parent { ...B } }
      fragment B on Allocation { children { edges { node { ...A } } } }
      fragment C on Allocation { ...C }`;
    expect(errors(src).map((e) => e.message)).toEqual([
      'Cannot spread fragment "A" within itself via "B".',
      'Cannot spread fragment "C" within itself.',
      'Fragment "C" is never used.',
    ]);
  });

  test("an undefined fragment measures nothing", () => {
    expect(errors(`{ allocation(id: "a") { ...Nope } }`)).toEqual([{ message: 'Unknown fragment "Nope".' }]);
  });
});

describe("aliases", () => {
  const aliased = (n: number) => `{ health { ${repeat(n, (i) => `a${i}: ok`)} } }`;

  test("refused just past maxAliases", () => {
    expect(errors(aliased(L.maxAliases - 1))).toEqual([]);
    expect(errors(aliased(L.maxAliases))).toEqual([]);
    expect(errors(aliased(L.maxAliases + 1))).toEqual(exceeded("aliases", L.maxAliases, L.maxAliases + 1));
  });

  test("aliases in fragment definitions count, once per place they are written", () => {
    const src = `
      query { health { ...F ...F } h: health { ...F } }
      fragment F on Health { a: ok b: ok c: redisReachable }`;
    expect(errors(src, { ...L, maxAliases: 4 })).toEqual([]);
    expect(errors(src, { ...L, maxAliases: 3 })).toEqual(exceeded("aliases", 3, 4));
  });
});

describe("cost", () => {
  /** context 1 + history 1 + `limit` items of 1 field. */
  const history = (limit: number) => `{ context(id: "c") { history(limit: ${limit}) { seq } } }`;

  test("refused just past maxCost", () => {
    expect(errors(history(L.maxCost - 3))).toEqual([]);
    expect(errors(history(L.maxCost - 2))).toEqual([]);
    expect(errors(history(L.maxCost - 1))).toEqual(exceeded("cost", L.maxCost, L.maxCost + 1));
  });

  test("a list multiplies by its limit, else by 10; other fields cost 1", () => {
    const at = (maxCost: number, src: string) => errors(src, { ...L, maxCost });
    expect(at(4, history(2))).toEqual([]);
    expect(at(3, history(2))).toEqual(exceeded("cost", 3, 4));
    // context 1 + locks (1 + 10 x (name 1 + holder 1)) + budget (1 + limits (1 + 10 x 1)): lists
    // without a size argument count 10 items.
    const nested = `
      { context(id: "c") { locks { ...G } budget { limits { kind } } } }
      fragment G on Lock { name holder }`;
    expect(at(34, nested)).toEqual([]);
    expect(at(33, nested)).toEqual(exceeded("cost", 33, 34));
  });

  test("a size given as a variable counts with the variable's value, else its default, else the argument's", () => {
    const at = (maxCost: number, src: string, variables: Record<string, unknown> = {}) => errors(src, { ...L, maxCost }, schema, variables);
    const variable = `query ($n: Int) { context(id: "c") { history(limit: $n) { seq } } }`;
    expect(at(502, variable, { n: 500 })).toEqual([]);
    expect(at(501, variable, { n: 500 })).toEqual(exceeded("cost", 501, 502));
    // Absent or null: history's default limit, 100.
    expect(at(101, variable)).toEqual(exceeded("cost", 101, 102));
    expect(at(101, variable, { n: null })).toEqual(exceeded("cost", 101, 102));
    expect(at(101, `{ context(id: "c") { history { seq } } }`)).toEqual(exceeded("cost", 101, 102));
    // A newest-first read counts by its last (history and historyPage: the larger of limit's default and last).
    const newest = `query ($n: Int) { context(id: "c") { history(last: $n) { seq } } }`;
    expect(at(502, newest, { n: 500 })).toEqual([]);
    expect(at(501, newest, { n: 500 })).toEqual(exceeded("cost", 501, 502));
    // historyPage's changes count by its size, as a connection's edges by first: 1 + 1 + 1 + 500 x 1 + 1.
    const page = `query ($n: Int) { context(id: "c") { historyPage(last: $n) { changes { seq } scannedTo } } }`;
    expect(at(504, page, { n: 500 })).toEqual([]);
    expect(at(503, page, { n: 500 })).toEqual(exceeded("cost", 503, 504));
    const declared = `query ($n: Int = 7) { context(id: "c") { history(limit: $n) { seq } } }`;
    expect(at(8, declared)).toEqual(exceeded("cost", 8, 9));
    expect(at(8, declared, { n: 3 })).toEqual([]);
  });

  test("a document's cost depends on the variables only where a first or limit is one", () => {
    expect(sizesFromVariables(parseLimited(`query($n: Int) { context(id: "c") { history(limit: $n) { seq } } }`, L.maxTokens))).toBe(true);
    expect(sizesFromVariables(parseLimited(`query($f: Int) { ...F } fragment F on Query { contexts(first: $f) { edges { cursor } } }`, L.maxTokens))).toBe(true);
    expect(sizesFromVariables(parseLimited(`query($id: ID!, $v: Int!) { context(id: $id) { history(limit: 5) { seq } snapshot(version: $v) } }`, L.maxTokens))).toBe(false);
  });

  test("a connection's first counts for its edges, literal or variable", () => {
    const at = (maxCost: number, src: string, variables: Record<string, unknown> = {}) => errors(src, { ...L, maxCost }, schema, variables);
    // contexts 1 + edges (1 + 500 x (node 1 + id 1)) + pageInfo (1 + 1).
    const page = `{ contexts(first: 500) { edges { node { id } } pageInfo { hasNextPage } } }`;
    expect(at(1004, page)).toEqual([]);
    expect(at(1003, page)).toEqual(exceeded("cost", 1003, 1004));
    // first left out: its default, 50.
    expect(at(101, `{ contexts { edges { node { id } } } }`)).toEqual(exceeded("cost", 101, 102));
    // The query that passed as 10 x 10 before: 2 + 500 x (node 1 + id 1 + history (1 + 1000)).
    const both = `query ($f: Int, $l: Int) { contexts(first: $f) { edges { node { id history(limit: $l) { seq } } } } }`;
    expect(errors(both, L, schema, { f: 500, l: 1000 })).toEqual(exceeded("cost", L.maxCost, 501_502));
  });

  test("allocation connections are charged by first, nested ones multiplying; totalCount and pageInfo cost 1 each", () => {
    const at = (maxCost: number, src: string) => errors(src, { ...L, maxCost });
    // context 1 + allocations (1 + totalCount 1 + pageInfo (1 + 2) + edges (1 + 5 x node (1 + id 1
    // + children (1 + totalCount 1 + edges (1 + 3 x node (1 + id 1)))))): children 9, node 11, 62 in all.
    const tree = `{ context(id: "c") { allocations(first: 5) { totalCount pageInfo { hasNextPage endCursor } edges { node { id children(first: 3) { totalCount edges { node { id } } } } } } } }`;
    expect(at(62, tree)).toEqual([]);
    expect(at(61, tree)).toEqual(exceeded("cost", 61, 62));
    // first left out: the default, 50, for both: 1 + 1 + (1 + 50 x (1 + 1 + (1 + 1 + 50 x 2))) = 5,203.
    const defaults = `{ context(id: "c") { allocations { edges { node { id children { edges { node { id } } } } } } } }`;
    expect(at(5_203, defaults)).toEqual([]);
    expect(at(5_202, defaults)).toEqual(exceeded("cost", 5_202, 5_203));
    // The console tree that cost 2,025 as lists: one page of 500, each with a page of 500 children.
    const big = `{ context(id: "c") { allocations(first: 500) { edges { node { id children(first: 500) { edges { node { id } } } } } } } }`;
    expect(errors(big)).toEqual(exceeded("cost", L.maxCost, 1 + 1 + 1 + 500 * (1 + 1 + 1 + 1 + 500 * 2)));
  });

  test("first counts like limit; a non-list field is not multiplied", () => {
    const small = buildSchema(`
      type Query { items(first: Int): [Item!]! one(first: Int): Item }
      type Item { id: ID! }`);
    const at = (maxCost: number, src: string) => errors(src, { ...L, maxCost }, small);
    expect(at(4, `{ items(first: 3) { id } }`)).toEqual([]);
    expect(at(3, `{ items(first: 3) { id } }`)).toEqual(exceeded("cost", 3, 4));
    expect(at(1, `{ items(first: 0) { id } }`)).toEqual([]);
    // A negative literal counts as 0, so it cannot pay for expensive siblings.
    expect(at(6, `{ items(first: -5) { id } one { id } more: items(first: 3) { id } }`)).toEqual(exceeded("cost", 6, 7));
    expect(at(1, `{ one(first: 50) { id } }`)).toEqual(exceeded("cost", 1, 2));
  });

  test("each operation is checked, the most expensive reported", () => {
    const src = `query A { health { ok } } query B { context(id: "c") { locks { name } } } query C { health { ok } }`;
    expect(errors(src, { ...L, maxCost: 11 })).toEqual(exceeded("cost", 11, 12));
  });

  test("unknown fields cost 1, graphql reporting them", () => {
    expect(errors(`{ health { nope { deeper } } }`, { ...L, maxCost: 1 })).toEqual([
      ...exceeded("cost", 1, 2),
      { message: 'Cannot query field "nope" on type "Health".' },
    ]);
  });
});

describe("fragment reuse", () => {
  test("1,000 spreads of one fragment are checked quickly", () => {
    const src = `{ context(id: "c") { ${repeat(1000, () => "...F")} } } fragment F on SwarmContext { id version seq }`;
    const start = performance.now();
    expect(errors(src, { ...L, maxCost: 3001 })).toEqual([]);
    expect(errors(src, { ...L, maxCost: 3000 })).toEqual(exceeded("cost", 3000, 3001));
    expect(performance.now() - start).toBeLessThan(1000);
  });

  test("fragments spread 10 times per level, 10 levels deep (10^10 expanded), are measured once each", () => {
    const levels = Array.from({ length: 10 }, (_, k) => `fragment F${k + 1} on Allocation { parent { ${repeat(10, () => `...F${k}`)} } }`);
    const src = `{ allocation(id: "a") { ...F10 } } fragment F0 on Allocation { id } ${levels.join(" ")}`;
    // Cost: allocation 1 + F10, where Fk = 1 + 10 x F(k-1) and F0 = 1: 1 + 11111111111.
    const cost = exceeded("cost", L.maxCost, 11_111_111_112);
    const start = performance.now();
    expect(errors(src, { ...L, maxDepth: 12 })).toEqual(cost);
    expect(errors(src, { ...L, maxDepth: 11 })).toEqual([...exceeded("depth", 11, 12), ...cost]);
    expect(performance.now() - start).toBeLessThan(1000);
  });
});

describe("tokens", () => {
  /** A query of `n` tokens: 17 around the list, n - 17 in it (a repeated field would instead spend seconds in graphql's overlap check). */
  const tokens = (n: number) => `# comments do not count\n{ context(id: "c") { slice(paths: [${repeat(n - 17, () => '"/a"')}]) } }`;

  test("refused just past maxTokens with LIMIT_EXCEEDED", () => {
    expect(errors(tokens(L.maxTokens - 1))).toEqual([]);
    expect(errors(tokens(L.maxTokens))).toEqual([]);
    expect(() => parseLimited(tokens(L.maxTokens + 1), L.maxTokens)).toThrow(
      expect.objectContaining({
        message: `query exceeds the limit of ${L.maxTokens} tokens`,
        extensions: { code: "LIMIT_EXCEEDED", limit: "tokens", max: L.maxTokens },
      }),
    );
  });

  test("other syntax errors are thrown unchanged", () => {
    for (const [src, message] of [
      ["{ health { ok }", "Syntax Error: Expected Name, found <EOF>."],
      ['{ health(x: "open', "Syntax Error: Unterminated string."],
    ] as const) {
      const error = (() => {
        try {
          parseLimited(src, L.maxTokens);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(GraphQLError);
      expect(error).toMatchObject({ message, extensions: {} });
    }
  });
});

describe("legitimate documents pass the defaults", () => {
  const dir = new URL("../gql/", import.meta.url);
  const files = readdirSync(dir).filter((name) => name.endsWith(".graphql"));

  test.each(files)("test/gql/%s", (name) => {
    expect(errors(readFileSync(new URL(name, dir), "utf8"))).toEqual([]);
  });

  test("an admin console's whole-context query", () => {
    const src = `
      query Console($id: ID!) {
        context(id: $id) {
          id version seq updatedAt updatedBy document
          budget { limits { kind amount } granted { kind amount } consumed { kind amount } available { kind amount } }
          activeAllocations heldLocks
          allocations { totalCount pageInfo { hasNextPage endCursor } edges { node { id status holder purpose granted { kind amount } consumed { kind amount } children(first: 10) { totalCount edges { node { id status children { totalCount } } } } } } }
          locks { name holder token expiresAt }
          history { seq kind actor at paths reason allocation { id status } lock { name token } }
        }
      }`;
    expect(errors(src)).toEqual([]);
  });
});

describe("field repeats", () => {
  const repeated = (n: number) => `{ health { ${"ok ".repeat(n)}} }`;
  const refused = (actual: number) => [
    {
      message: `"ok" is selected ${actual} times in one selection set; the limit is ${L.maxFieldRepeats}`,
      code: "LIMIT_EXCEEDED",
      limit: "fieldRepeats",
      max: L.maxFieldRepeats,
      actual,
    },
  ];

  test("refused just past maxFieldRepeats", () => {
    expect(errors(repeated(L.maxFieldRepeats))).toEqual([]);
    expect(errors(repeated(L.maxFieldRepeats + 1))).toEqual(refused(L.maxFieldRepeats + 1));
  });

  test("repeats through fragments and inline fragments count; one fragment spread again counts once", () => {
    const fragments = repeat(L.maxFieldRepeats + 1, (i) => `fragment H${i} on Health { ok }`);
    const spreads = repeat(L.maxFieldRepeats + 1, (i) => `...H${i}`);
    expect(errors(`{ health { ${spreads} } } ${fragments}`)).toEqual(refused(L.maxFieldRepeats + 1));
    expect(errors(`{ health { ok ... on Health { ${"ok ".repeat(L.maxFieldRepeats)}} } }`)).toEqual(refused(L.maxFieldRepeats + 1));
    expect(errors(`{ health { ${"...H0 ".repeat(100)}} } fragment H0 on Health { ok }`)).toEqual([]);
  });

  test("the limit stops the quadratic merge check early: 2,000 repeats are refused in milliseconds", () => {
    const document = parseLimited(repeated(2000), L.maxTokens);
    const started = performance.now();
    const found = validate(schema, document, limitRules(L));
    expect(found.map((e) => e.extensions.limit)).toEqual(["fieldRepeats"]);
    // graphql's own rules take about 0.4 s on this document; the limits alone take a few ms.
    expect(performance.now() - started).toBeLessThan(200);
  });
});

test("introspection fields are not measured inside: GraphiQL's introspection query passes every limit", () => {
  expect(errors(getIntrospectionQuery())).toEqual([]);
});

test("brackets nested past MAX_NESTING are refused before graphql's recursive parser could overflow its stack", () => {
  const nested = (n: number) => `{ context(id: "c") { slice(paths: ${"[".repeat(n)}"/a"${"]".repeat(n)}) } }`;
  // The selection and the argument list hold 3 brackets around the list literal.
  expect(() => parseLimited(nested(MAX_NESTING - 3), L.maxTokens)).not.toThrow();
  for (const n of [MAX_NESTING - 2, 2_400]) {
    try {
      parseLimited(nested(n), L.maxTokens);
      expect.unreachable();
    } catch (error) {
      expect((error as GraphQLError).extensions).toEqual({ code: "LIMIT_EXCEEDED", limit: "depth", max: MAX_NESTING });
    }
  }
});
