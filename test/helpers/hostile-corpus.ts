/**
 * A deterministic corpus of hostile requests for test/integration/hostile.test.ts: GraphQL
 * operations that break the query limits or the schema (sent over HTTP and over WebSocket),
 * malformed HTTP requests, and graphql-transport-ws protocol abuse. Sizes are derived from the
 * server's limits so that each request is past the bound it probes, and every case names the
 * codes (API.md, Errors) or close codes it must get.
 */
import type { Config } from "../../src/config.js";

/** API.md's error codes, plus the masked fault's. */
export const API_CODES: readonly string[] = [
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "VERSION_CONFLICT",
  "INVALID_PATCH",
  "VALIDATION_FAILED",
  "INSUFFICIENT_RESOURCES",
  "USAGE_EXCEEDED",
  "ALLOCATION_ENDED",
  "LOCK_HELD",
  "STALE_FENCE",
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "RATE_LIMITED",
  "LIMIT_EXCEEDED",
  "RESYNC_REQUIRED",
  "UNAVAILABLE",
];

/** The server bounds the corpus is sized against. */
export type CorpusLimits = Pick<
  Config,
  "maxRequestBytes" | "maxQueryDepth" | "maxAliases" | "maxTokens" | "maxCost" | "maxFieldRepeats" | "maxDocumentDepth" | "maxResponseBytes"
>;

/** Names the test resolves: which key a request carries. */
export type Role = "agent" | "viewer";

/** A GraphQL request's parameters, well-formed enough for both transports. */
export interface Operation {
  readonly query: string;
  readonly variables?: Record<string, unknown>;
  readonly operationName?: string;
}

/** An operation that must be refused with one of `codes`, sent with a `role` key over HTTP and over WebSocket. */
export interface OperationCase {
  readonly category: string;
  readonly name: string;
  readonly role: Role;
  /** The operation's JSON as sent (an HTTP body, a subscribe message's payload): written out, as some nest deeper than JSON.stringify can. */
  readonly json: string;
  readonly codes: readonly string[];
}

/** Who an HTTP request claims to be: a key of a role, no header, or a raw Authorization value. */
export type HttpAuth = Role | "none" | { readonly header: string };

/** An HTTP body: bytes sent with their content-length, or chunks sent chunked (no content-length). */
export type HttpBody = { readonly kind: "sized"; readonly bytes: () => Buffer } | { readonly kind: "chunked"; readonly chunks: () => Buffer[] };

/** An HTTP request that must be answered with a status in `statuses` and errors whose codes are all in `codes`. */
export interface HttpCase {
  readonly category: string;
  readonly name: string;
  readonly method: string;
  /** Path and query string. */
  readonly path: string;
  readonly auth: HttpAuth;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: HttpBody;
  readonly statuses: readonly number[];
  readonly codes: readonly string[];
  /** Megabytes on the wire: sent one at a time, so that their transfer is not what other cases' answer times measure. */
  readonly heavy?: boolean;
}

/**
 * A graphql-transport-ws conversation that breaks the protocol: the socket is opened with
 * `protocol`, `init` is sent as connection_init's connectionParams (unless null), then `messages`;
 * the server must close the connection with one of `closeCodes`.
 */
export interface WsProtocolCase {
  readonly category: string;
  readonly name: string;
  readonly protocol: string | null;
  /** connectionParams of connection_init ("agent": a valid agent key), or null to send no connection_init. */
  readonly init: "agent" | Record<string, unknown> | null;
  /** Sent after connection_ack (or at once when init is null). */
  readonly messages: readonly (() => string | Buffer)[];
  readonly closeCodes: readonly number[];
  /** Megabytes on the wire (see HttpCase.heavy). */
  readonly heavy?: boolean;
}

export interface Corpus {
  /** Sent over HTTP and over WebSocket. */
  readonly operations: readonly OperationCase[];
  /** HTTP only: malformed requests and bodies. */
  readonly http: readonly HttpCase[];
  /** WebSocket only: protocol abuse. */
  readonly ws: readonly WsProtocolCase[];
}

/** A small seeded PRNG (mulberry32): the corpus is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const LIMIT = ["LIMIT_EXCEEDED"];
const INVALID = ["VALIDATION_FAILED"];
const FORBIDDEN = ["FORBIDDEN"];

/**
 * Builds the corpus. `scoped` is a context id inside the agent's and viewer's scope that exists
 * (so that arguments reach the resolvers' checks); `allocation` an allocation id in it.
 */
/**
 * The corpus for the server's `limits`. `scoped` is a context in the keys' scope with a budget of
 * credits and `allocation` one of its allocations; `big` one whose allocations, and whose feed,
 * each weigh more than maxResponseBytes.
 */
export function hostileCorpus(limits: CorpusLimits, scoped: string, allocation: string, big: string): Corpus {
  const random = prng(0x5eed);
  const operations: OperationCase[] = [];
  const op = (category: string, name: string, query: string, codes: readonly string[], extra: Partial<Operation> & { role?: Role; variablesJson?: string } = {}) => {
    const { role = "agent", variablesJson, ...rest } = extra;
    const json = JSON.stringify({ query, ...rest });
    operations.push({ category, name, role, codes, json: variablesJson === undefined ? json : `${json.slice(0, -1)},"variables":${variablesJson}}` });
  };
  const { maxQueryDepth: depth, maxAliases: aliases, maxTokens: tokens, maxFieldRepeats: repeats } = limits;

  // Deep nesting: parent chains past maxQueryDepth, written out, through named fragments and
  // through inline fragments; the longest run past maxTokens too.
  const parents = (n: number, leaf = "id") => `${"parent { ".repeat(n)}${leaf}${" }".repeat(n)}`;
  // From about 1,700 levels the document is also past maxTokens (3 tokens a level), which the
  // parser notices only once it has recursed that deep.
  for (const n of [depth - 1, depth, depth + 5, 2 * depth, 100, 400, 1_000, 1_700, 2_000, 2_400, 3_000]) {
    op("deep nesting", `parent chain of ${n}`, `{ allocation(id: "${allocation}") { ${parents(n)} } }`, LIMIT);
  }
  for (const n of [depth, 3 * depth, 200]) {
    const fragments = range(n).map((i) => `fragment P${i} on Allocation { parent { ${i + 1 < n ? `...P${i + 1}` : "id"} } }`);
    op("deep nesting", `fragment chain of ${n}`, `{ allocation(id: "${allocation}") { ...P0 } } ${fragments.join(" ")}`, LIMIT);
  }
  for (const n of [depth, 50, 300]) {
    op("deep nesting", `inline fragment chain of ${n}`, `{ allocation(id: "${allocation}") { ${"parent { ... on Allocation { ".repeat(n)}id${" } }".repeat(n)} } }`, LIMIT);
  }
  // Nested literals and type references: the parser recurses once per level, up to maxTokens.
  for (const n of [100, 1_000, 1_600, 2_400]) {
    op("deep nesting", `list literal nested ${n} deep`, `{ context(id: "${scoped}") { slice(paths: ${"[".repeat(n)}"/a"${"]".repeat(n)}) } }`, [...INVALID, ...LIMIT]);
    op("deep nesting", `type reference nested ${n} deep`, `query Q($v: ${"[".repeat(n)}String${"]".repeat(n)}) { context(id: "${scoped}") { slice(paths: $v) } }`, [...INVALID, ...LIMIT], { variablesJson: '{"v":["/a"]}' });
  }
  for (const n of [100, 1_000, 1_600]) {
    op("deep nesting", `object literal nested ${n} deep`, `mutation { mergeContext(id: "${scoped}", merge: { x: ${"{a: ".repeat(n)}1${"}".repeat(n)} }) { version } }`, LIMIT);
  }
  op("deep nesting", "deep children lists", `{ allocation(id: "${allocation}") { ${"children { edges { node { ".repeat(depth + 2)}id${" } } }".repeat(depth + 2)} } }`, LIMIT);
  op("deep nesting", "a deep operation beside the one selected", `query A { __typename } query Q { allocation(id: "${allocation}") { ${parents(depth + 3)} } }`, LIMIT, { operationName: "A" });

  // Alias floods.
  for (const n of [aliases + 1, aliases + 10, 2 * aliases, 100, 300, 1_000, 2_000]) {
    op("alias flood", `${n} aliases of health`, `{ ${range(n).map((i) => `a${i}: health { ok }`).join(" ")} }`, LIMIT);
  }
  for (const n of [aliases + 1, 500]) {
    op("alias flood", `${n} aliases of __typename`, `{ ${range(n).map((i) => `t${i}: __typename`).join(" ")} }`, LIMIT);
    op("alias flood", `${n} aliases inside a fragment`, `{ ...F } fragment F on Query { health { ${range(n).map((i) => `o${i}: ok`).join(" ")} } }`, LIMIT);
  }
  op("alias flood", "aliased context reads by a viewer", `{ ${range(aliases + 5).map((i) => `c${i}: context(id: "${scoped}") { document }`).join(" ")} }`, LIMIT, { role: "viewer" });

  // Field repeats.
  for (const n of [repeats + 1, 2 * repeats, 100, 1_000, 4_000]) {
    op("field repeats", `ok x ${n}`, `{ health { ${"ok ".repeat(n)}} }`, LIMIT);
  }
  for (const n of [repeats + 1, 500]) {
    op("field repeats", `__typename x ${n}`, `{ ${"__typename ".repeat(n)}}`, LIMIT);
    op("field repeats", `health x ${n} through inline fragments`, `{ ${"... on Query { health { ok } } ".repeat(n)}}`, LIMIT);
    op("field repeats", `value x ${n} with differing arguments`, `{ context(id: "${scoped}") { ${range(n).map((i) => `value(path: "/p${i}")`).join(" ")} } }`, LIMIT);
  }
  {
    const n = repeats + 2;
    const fragments = range(n).map((i) => `fragment R${i} on Health { ok ${i > 0 ? `...R${i - 1}` : ""} }`);
    op("field repeats", `ok repeated through ${n} distinct fragments`, `{ health { ${range(n).map((i) => `...R${i}`).join(" ")} } } ${fragments.join(" ")}`, LIMIT);
  }

  // Fragment cycles and self-spreads: graphql's own rule refuses them.
  op("fragment cycle", "self-spread", "{ ...A } fragment A on Query { ...A }", INVALID);
  op("fragment cycle", "self-spread beside a field", "{ ...A } fragment A on Query { __typename ...A }", INVALID);
  op("fragment cycle", "self-spread in an inline fragment", "{ ...A } fragment A on Query { ... on Query { ...A } }", INVALID);
  op("fragment cycle", "self-spread through parent", `{ allocation(id: "${allocation}") { ...P } } fragment P on Allocation { id parent { ...P } }`, INVALID);
  op("fragment cycle", "unused self-spreading fragment", "{ __typename } fragment A on Query { ...A }", INVALID);
  for (const n of [2, 3, 7, 50, 400]) {
    // Each fragment of the cycle selects health: past maxFieldRepeats fragments, that limit may be what refuses it.
    const fragments = range(n).map((i) => `fragment C${i} on Query { health { ok } ...C${(i + 1) % n} }`);
    op("fragment cycle", `cycle of ${n}`, `{ ...C0 } ${fragments.join(" ")}`, n > repeats ? [...INVALID, ...LIMIT] : INVALID);
  }
  {
    const n = 40;
    const fragments = range(n).map((i) => `fragment M${i} on Query { ${range(n).filter((j) => j !== i && random() < 0.2).map((j) => `...M${j}`).join(" ") || `...M${(i + 1) % n}`} }`);
    op("fragment cycle", "random mesh of 40 mutually spreading fragments", `{ ...M0 } ${fragments.join(" ")}`, INVALID);
  }
  op("fragment cycle", "spread of an undefined fragment", "{ ...Missing }", INVALID);
  op("fragment cycle", "fragment on an unknown type", "{ ...X } fragment X on Nope { a }", INVALID);

  // Fragment bombs: each level spreads the previous one under two fields, so the expanded
  // operation grows as 2^n (and as 10^n through the children pages); the smallest is just past
  // maxCost (level k costs 13 + 11 x level k-1: parent 1 + it, children(first: 10) 3 + 10 x (1 + it)).
  let smallest = 1;
  for (let cost = 1; 1 + cost <= limits.maxCost; smallest++) cost = 13 + 11 * cost;
  for (const n of [smallest, 10, 20, 40, 80]) {
    const fragments = range(n).map((i) =>
      i === 0 ? "fragment B0 on Allocation { id }" : `fragment B${i} on Allocation { parent { ...B${i - 1} } children(first: 10) { edges { node { ...B${i - 1} } } } }`,
    );
    op("fragment bomb", `binary bomb of ${n} levels`, `{ allocation(id: "${allocation}") { ...B${n - 1} } } ${fragments.join(" ")}`, LIMIT);
  }
  for (const n of [4, 8, 16]) {
    const fragments = range(n).map((i) =>
      i === 0 ? "fragment W0 on SwarmContext { id }" : `fragment W${i} on SwarmContext { ...W${i - 1} history(limit: 1000) { allocation { children { edges { node { contextId } } } } } }`,
    );
    op("fragment bomb", `cost bomb of ${n} levels`, `{ contexts(first: 500) { edges { node { ...W${n - 1} } } } } ${fragments.join(" ")}`, LIMIT);
  }
  for (const n of [15, 60]) {
    const fragments = range(n).map((i) => `fragment Q${i} on Query { health { ok } ${range(i).map((j) => `...Q${j}`).join(" ")} }`);
    op("fragment bomb", `every fragment spreads every earlier one (${n})`, `{ ...Q${n - 1} } ${fragments.join(" ")}`, LIMIT);
  }

  // Token floods.
  for (const n of [tokens + 1, 2 * tokens, 4 * tokens]) {
    op("token flood", `list literal of ${n} ints`, `{ context(id: "${scoped}") { slice(paths: [${"1 ".repeat(n)}]) } }`, LIMIT);
  }
  for (const n of [tokens + 4, 2 * tokens]) {
    op("token flood", `${n} tokens of variable definitions`, `query Q(${range(Math.ceil(n / 4)).map((i) => `$v${i}: Int`).join(" ")}) { __typename }`, LIMIT);
    op("token flood", `${n} tokens of directives`, `{ __typename ${"@include(if: true) ".repeat(Math.ceil(n / 6))}}`, LIMIT);
    op("token flood", `${n} tokens of operations`, range(Math.ceil(n / 5) + 1).map((i) => `query O${i}{__typename}`).join(" "), LIMIT, { operationName: "O0" });
  }
  op("token flood", "punctuation only", `${"{".repeat(tokens + 10)}`, LIMIT);
  op("token flood", "tokens past the limit, then a syntax error", `{ health { ok } } ${"x ".repeat(tokens + 10)} }}}`, LIMIT);

  // Huge strings, kept under the request bound (the oversized ones are HTTP cases below).
  const room = limits.maxRequestBytes - 1_024;
  op("huge string", "opId just under the body limit", `mutation { patchContext(id: "${scoped}", opId: "${"o".repeat(room)}", patch: []) { version } }`, INVALID);
  op("huge string", "context id just under the body limit", `{ context(id: "${"i".repeat(room)}") { id } }`, [...INVALID, ...FORBIDDEN]);
  op("huge string", "block string lock name", `mutation { acquireLock(contextId: "${scoped}", name: """${"n".repeat(room)}""", holder: "h", leaseMs: 1000) { token } }`, INVALID);
  op("huge string", "holder just under the body limit", `mutation { acquireLock(contextId: "${scoped}", name: "n", holder: "${"h".repeat(room)}", leaseMs: 1000) { token } }`, INVALID);
  op("huge string", "escaped unicode string", `{ context(id: "${"\\u0000".repeat(Math.floor(room / 7))}") { id } }`, [...INVALID, ...FORBIDDEN]);
  op("huge string", "unterminated string", `{ context(id: "${"x".repeat(room)}) { id } }`, INVALID);
  op("huge string", "invalid escape", `{ context(id: "\\x41") { id } }`, INVALID);
  op("huge string", "lone surrogate escape", `{ context(id: "\\uD800") { id } }`, [...INVALID, ...FORBIDDEN]);
  op("huge string", "huge JSON pointer", `{ context(id: "${scoped}") { value(path: "${"~2".repeat(Math.floor(room / 2))}") } }`, INVALID);

  // Huge, deeply nested and mistyped variables.
  const patchValue = `mutation P($v: JSON) { patchContext(id: "${scoped}", patch: [{ op: add, path: "/hostile", value: $v }]) { version } }`;
  for (const n of [limits.maxDocumentDepth + 1, 1_000, 10_000, Math.floor(room / 2)]) {
    op("huge variables", `JSON array variable nested ${n} deep`, patchValue, LIMIT, { variablesJson: `{"v":${"[".repeat(n)}1${"]".repeat(n)}}` });
  }
  for (const n of [limits.maxDocumentDepth + 1, Math.floor(room / 6)]) {
    op("huge variables", `JSON object variable nested ${n} deep`, patchValue, LIMIT, { variablesJson: `{"v":${'{"a":'.repeat(n)}1${"}".repeat(n)}}` });
  }
  {
    const n = Math.floor(room / 6);
    const merge = `mutation M($m: JSON!) { mergeContext(id: "${scoped}", merge: $m) { version } }`;
    op("huge variables", `merge document nested ${n} deep`, merge, LIMIT, { variablesJson: `{"m":{"x":${'{"a":'.repeat(n)}1${"}".repeat(n)}}}` });
    op("huge variables", `patch list nested ${n} deep`, `mutation P($p: [JSONPatchOperation!]!) { patchContext(id: "${scoped}", patch: $p) { version } }`, INVALID, {
      variablesJson: `{"p":${"[".repeat(n)}${"]".repeat(n)}}`,
    });
  }
  op("huge variables", "opId variable just under the body limit", `mutation P($o: String) { patchContext(id: "${scoped}", opId: $o, patch: []) { version } }`, INVALID, {
    variables: { o: "o".repeat(room) },
  });
  op("huge variables", "paths variable of 5,000 items", `subscription S($p: [String!]!) { watchSlice(id: "${scoped}", paths: $p) { slice } }`, INVALID, {
    variables: { p: range(5_000).map((i) => `/p${i}`) },
  });
  op("huge variables", "contextIds variable of 5,000 ids", `subscription S($c: [ID!]) { contextChanges(contextIds: $c) { changes { seq } } }`, INVALID, {
    variables: { c: range(5_000).map((i) => `in-${i}`) },
  });
  op("huge variables", "a 4,000-key variables object beside a mistyped one", `query Q($id: ID!) { context(id: $id) { id } }`, INVALID, {
    variables: { ...Object.fromEntries(range(4_000).map((i) => [`k${i}`, i])), id: { nested: true } },
  });
  const wrong: [string, string, unknown][] = [
    ["ID! given a number-like object", "ID!", { a: 1 }],
    ["ID! given a list", "ID!", ["a"]],
    ["ID! given null", "ID!", null],
    ["ID! given a float", "ID!", 1.5],
    ["ID! given a boolean", "ID!", true],
  ];
  for (const [name, type, value] of wrong) op("wrong variable types", name, `query Q($id: ${type}) { context(id: $id) { id } }`, INVALID, { variables: { id: value } });
  op("wrong variable types", "ID! missing", "query Q($id: ID!) { context(id: $id) { id } }", INVALID, { variables: {} });
  for (const [name, value] of [
    ["Int given a string", "x"],
    ["Int given 2^53", 2 ** 53],
    ["Int given 1.5", 1.5],
    ["Int given an object", { n: 1 }],
    ["Int given NaN-like string", "NaN"],
  ] as const) {
    op("wrong variable types", name, `query Q($n: Int) { context(id: "${scoped}") { snapshot(version: $n) } }`, INVALID, { variables: { n: value } });
  }
  op("wrong variable types", "enum given an unknown value", `query Q($s: AllocationStatus) { context(id: "${scoped}") { allocations(status: $s) { edges { node { id } } } } }`, INVALID, { variables: { s: "ALL" } });
  op("wrong variable types", "input object with unknown fields", `mutation P($p: [JSONPatchOperation!]!) { patchContext(id: "${scoped}", patch: $p) { version } }`, INVALID, {
    variables: { p: [{ op: "add", path: "/a", value: 1, evil: true }] },
  });
  op("wrong variable types", "input object with a prototype key", `mutation P($p: [JSONPatchOperation!]!) { patchContext(id: "${scoped}", patch: $p) { version } }`, INVALID, {
    variables: JSON.parse(`{"p":[{"op":"add","path":"/a","__proto__":{"polluted":true}}]}`) as Record<string, unknown>,
  });
  op("wrong variable types", "variable used where a different type is expected", "query Q($n: Int) { context(id: $n) { id } }", INVALID, { variables: { n: 1 } });
  op("wrong variable types", "undefined variable", "{ context(id: $nope) { id } }", INVALID);
  op("wrong variable types", "DateTime-like mistyped cursor", `subscription S($a: [CursorInput!]) { contextChanges(after: $a) { changes { seq } } }`, INVALID, {
    variables: { a: [{ contextId: scoped, seq: "one" }] },
  });

  // Unknown fields, types and operations.
  op("unknown fields", "unknown root field", "{ nope }", INVALID);
  op("unknown fields", "unknown nested field", "{ health { ok nope } }", INVALID);
  op("unknown fields", "near-miss field (no suggestion for non-admins)", "{ helth { ok } }", INVALID, { role: "viewer" });
  op("unknown fields", "unknown argument", "{ health(verbose: true) { ok } }", INVALID);
  op("unknown fields", "unknown mutation", "mutation { dropEverything }", INVALID);
  op("unknown fields", "scalar with a selection", "{ health { ok { deeper } } }", INVALID);
  op("unknown fields", "object without a selection", "{ health }", INVALID);
  op("unknown fields", "unknown directive", "{ health @evil { ok } }", INVALID);
  op("unknown fields", "operationName that is not in the document", "query A { __typename } query B { __typename }", INVALID, { operationName: "C" });
  op("unknown fields", "several operations without an operationName", "query A { __typename } query B { __typename }", INVALID);
  op("unknown fields", "two anonymous operations", "{ __typename } { __typename }", INVALID);
  op("unknown fields", "subscription with two root fields", `subscription { a: watchSlice(id: "${scoped}", paths: ["/a"]) { seq } b: watchSlice(id: "${scoped}", paths: ["/b"]) { seq } }`, INVALID);
  op("unknown fields", "unknown operation type", "fetch { health { ok } }", INVALID);
  op("unknown fields", "empty document", "", INVALID);
  op("unknown fields", "comments only", "# nothing here", INVALID);
  op("unknown fields", "type definitions instead of an operation", "type Evil { a: Int }", INVALID);
  op("unknown fields", "schema extension", "extend type Query { evil: Int }", INVALID);
  op("unknown fields", "unbalanced braces", "{ health { ok }", INVALID);
  op("unknown fields", "NUL byte in the document", "{ health\u0000 { ok } }", INVALID);
  for (let i = 0; i < 8; i++) {
    // Random bytes of GraphQL punctuation and names: syntax or validation errors.
    const alphabet = ["{", "}", "(", ")", "...", "@", "$", ":", "!", "=", "[", "]", "|", "&", "health", "ok", "query", "fragment", "on", '"s"', "1", "#c\n"];
    const text = range(20 + Math.floor(random() * 200)).map(() => alphabet[Math.floor(random() * alphabet.length)]).join(" ");
    op("unknown fields", `random token soup ${i}`, text, [...INVALID, ...LIMIT]);
  }

  // Argument values the resolvers refuse.
  op("bad arguments", "context id in scope that is not one", `subscription { contextChanges(contextIds: ["in- not an id!"]) { changes { seq } } }`, INVALID);
  op("bad arguments", "context id out of scope that is not one", `subscription { contextChanges(contextIds: ["{not an id}"]) { changes { seq } } }`, [...INVALID, ...FORBIDDEN]);
  op("bad arguments", "contextIds out of scope", `subscription { contextChanges(contextIds: ["out-of-scope"]) { changes { seq } } }`, FORBIDDEN);
  op("bad arguments", "watchSlice of a context out of scope", `subscription { watchSlice(id: "out-of-scope", paths: ["/a"]) { seq } }`, FORBIDDEN);
  op("bad arguments", "maxBatchesPerSecond of 0", `subscription { contextChanges(contextIds: ["${scoped}"], maxBatchesPerSecond: 0) { changes { seq } } }`, INVALID);
  op("bad arguments", "batch size past its bound", `subscription { contextChanges(contextIds: ["${scoped}"], batch: { maxSize: 1000000 }) { changes { seq } } }`, INVALID);
  op("bad arguments", "negative page size", "{ contexts(first: -1) { edges { cursor } } }", INVALID);
  op("bad arguments", "page size past its bound", "{ contexts(first: 100000) { edges { cursor } } }", [...INVALID, ...LIMIT]);
  op("bad arguments", "viewer writes", `mutation { patchContext(id: "${scoped}", patch: [{ op: add, path: "/v", value: 1 }]) { version } }`, FORBIDDEN, { role: "viewer" });
  op("bad arguments", "agent creates a context", `mutation { createContext(id: "in-agent", document: {}) { id } }`, FORBIDDEN);
  op("bad arguments", "agent changes the budget", `mutation { patchContext(id: "${scoped}", patch: [{ op: add, path: "/resources/limits/credits", value: 1 }]) { version } }`, FORBIDDEN);
  op("bad arguments", "agent reinitializes", `mutation { reinitialize(confirm: "the state is lost") { ok } }`, [...FORBIDDEN, ...INVALID]);
  op("bad arguments", "agent reads out of scope", `{ context(id: "out-of-scope") { id } }`, FORBIDDEN);
  op("bad arguments", "patch with a bad pointer", `mutation { patchContext(id: "${scoped}", patch: [{ op: remove, path: "no-slash" }]) { version } }`, ["INVALID_PATCH", ...INVALID]);

  // What one key holder could do to every tenant: load a swarm's whole ledger once per
  // allocation, get past the cost limit with variables, carry hundreds of megabytes in one
  // response, poison or uncap a swarm's policy, allocate nothing or kinds that are not there.
  op("tenant abuse", "every allocation's children, by a viewer", `{ context(id: "${big}") { allocations(first: 500) { edges { node { id children { edges { node { id } } } } } } } }`, LIMIT, { role: "viewer" });
  op("tenant abuse", "the allocations of a big ledger, aliased", `{ ${range(4).map((i) => `c${i}: context(id: "${big}") { allocations { edges { node { id } } } }`).join(" ")} }`, LIMIT, { role: "viewer" });
  op("tenant abuse", "list sizes as variables past the cost limit", "query Q($f: Int, $l: Int) { contexts(first: $f) { edges { node { id history(limit: $l) { seq } } } } }", LIMIT, {
    variables: { f: 500, l: 1000 },
  });
  op("tenant abuse", "a connection's first past the cost limit", `{ contexts(first: 500) { edges { node { history(limit: 1000) { seq patch } } } } }`, LIMIT);
  op("tenant abuse", "aliased feed reads past the response bound", `{ context(id: "${big}") { ${range(8).map((i) => `h${i}: history(afterSeq: 1, limit: 1000) { patch allocation { id } }`).join(" ")} } }`, LIMIT, { role: "viewer" });
  op("tenant abuse", "a lease past the largest leaseMs in the policy", `mutation { mergeContext(id: "${scoped}", merge: { policy: { allocation: { profiles: { p: { request: { credits: 1 }, leaseMs: 9007199254740991 } } } } }) { version } }`, INVALID);
  op("tenant abuse", "an agent lifts its caps", `mutation { mergeContext(id: "${scoped}", merge: { policy: { allocation: { maxShare: 1, maxDepth: 100000 } } }) { version } }`, FORBIDDEN);
  op("tenant abuse", "an agent sets the default lease", `mutation { mergeContext(id: "${scoped}", merge: { policy: { allocation: { defaultLeaseMs: 9007199254740991 } } }) { version } }`, FORBIDDEN);
  op("tenant abuse", "an allocation of nothing", `mutation { allocate(contextId: "${scoped}", request: [{ kind: "credits", amount: 0 }], mode: EXACT) { id } }`, INVALID);
  for (const kind of ["nonexistentkind", "constructor", "toString", "__proto__"]) {
    op("tenant abuse", `an EXACT allocation of ${kind}`, `mutation { allocate(contextId: "${scoped}", request: [{ kind: "${kind}", amount: 1 }], mode: EXACT) { id } }`, [...INVALID, "INSUFFICIENT_RESOURCES"]);
  }
  op("tenant abuse", "a fence with an empty lock name", `mutation { patchContext(id: "${scoped}", patch: [{ op: add, path: "/f", value: 1 }], fence: { lock: "", token: 999 }) { version } }`, INVALID);
  op("tenant abuse", "a forged list cursor (base64url of an id)", `{ contexts(first: 1, after: "dGVhbS1iLTE") { edges { cursor } } }`, INVALID, { role: "viewer" });

  // Introspection by keys that may not see the schema.
  const introspection: [string, string, Partial<Operation>?][] = [
    ["__schema types", "{ __schema { types { name fields { name } } } }"],
    ["__type of Mutation", '{ __type(name: "Mutation") { fields { name args { name } } } }'],
    ["aliased __schema", "{ s: __schema { queryType { name } } }"],
    ["__schema in a fragment", "{ ...I } fragment I on Query { __schema { directives { name } } }"],
    ["__schema in an inline fragment", "{ ... on Query { __schema { mutationType { name } } } }"],
    ["__type beside a normal field", '{ health { ok } __type(name: "SwarmContext") { name } }'],
    ["selected by operationName", "query A { __typename } query B { __schema { types { name } } }", { operationName: "B" }],
    [
      "GraphiQL's query",
      "query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name } types { ...FullType } directives { name description locations args { ...InputValue } } } } fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } } fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue } fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }",
    ],
  ];
  for (const [name, query, extra] of introspection) {
    for (const role of ["agent", "viewer"] as const) op("introspection", `${name} (${role})`, query, FORBIDDEN, { ...extra, role });
  }

  // --- HTTP only ---------------------------------------------------------------------------
  const http: HttpCase[] = [];
  const json = { "content-type": "application/json" };
  const sized = (text: string | Buffer): HttpBody => ({ kind: "sized", bytes: () => (typeof text === "string" ? Buffer.from(text) : text) });
  const post = (category: string, name: string, body: HttpBody, codes: readonly string[], statuses: readonly number[], extra: Partial<HttpCase> = {}) =>
    http.push({ category, name, method: "POST", path: "/graphql", auth: "agent", headers: json, body, codes, statuses, ...extra });
  // The server answers refusals with 200 unless they carry their own status (401, 403, 429):
  // observability-plugin.ts; yoga's would be 400.
  const REQUEST_STATUSES = [200, 400];
  // A request that is not well-formed GraphQL-over-HTTP (not JSON, not GraphQL's parameters): 400.
  const MALFORMED = [400];

  // Oversized bodies: with content-length and chunked, refused before they are read whole.
  const max = limits.maxRequestBytes;
  const tenMb = 10 * 1024 * 1024;
  const hugeQuery = (bytes: number) => Buffer.from(JSON.stringify({ query: `{ context(id: "${"x".repeat(bytes)}") { id } }` }));
  for (const [name, bytes] of [
    ["one byte over the limit", max + 1 - hugeQuery(0).length],
    ["twice the limit", 2 * max],
    ["a 10 MB string literal", tenMb],
  ] as const) {
    const heavy = bytes > 1024 * 1024;
    post("oversized body", `${name}, with content-length`, { kind: "sized", bytes: () => hugeQuery(bytes) }, LIMIT, [413], { heavy });
    post("oversized body", `${name}, chunked`, { kind: "chunked", chunks: () => chunk(hugeQuery(bytes), 16 * 1024) }, LIMIT, [413], { heavy });
  }
  post("oversized body", "1 MB of zeros, chunked in 1 KB pieces", { kind: "chunked", chunks: () => chunk(Buffer.alloc(1024 * 1024), 1024) }, LIMIT, [413], { heavy: true });
  post("oversized body", "10 MB variables, with content-length", { kind: "sized", bytes: () => Buffer.from(JSON.stringify({ query: "query Q($v: String) { __typename }", variables: { v: "v".repeat(tenMb) } })) }, LIMIT, [413], { heavy: true });
  post("oversized body", "10 MB body without authorization", { kind: "sized", bytes: () => hugeQuery(tenMb) }, LIMIT, [413], { auth: "none", heavy: true });
  post("oversized body", "oversized batch array, chunked", { kind: "chunked", chunks: () => chunk(Buffer.from(JSON.stringify(range(5_000).map(() => ({ query: "{ health { ok } }" })))), 8 * 1024) }, LIMIT, [413]);
  http.push({ category: "oversized body", name: "GET with a 10 MB body", method: "GET", path: "/graphql?query=%7B__typename%7D", auth: "agent", headers: json, body: { kind: "sized", bytes: () => hugeQuery(tenMb) }, codes: LIMIT, statuses: [413], heavy: true });
  // Oversized request heads: Node's HTTP parser bounds them (16 KB by default); the refusal should still be coded.
  http.push({ category: "oversized body", name: "GET with a 20 KB query string", method: "GET", path: `/graphql?query=${encodeURIComponent(`{ context(id: "${"x".repeat(20_000)}") { id } }`)}`, auth: "agent", headers: {}, codes: LIMIT, statuses: [413, 414, 431] });
  post("oversized body", "a 20 KB Authorization header", sized(JSON.stringify({ query: "{ health { ok } }" })), [...LIMIT, "UNAUTHENTICATED"], [401, 413, 431], { auth: { header: `Bearer ${"k".repeat(20_000)}` } });
  post("oversized body", "200 headers of 100 bytes", sized(JSON.stringify({ query: "{ health { ok } }" })), LIMIT, [413, 431], {
    headers: { ...json, ...Object.fromEntries(range(200).map((i) => [`x-pad-${i}`, "p".repeat(100)])) },
  });
  // At the limit exactly: read, then refused for what it says.
  {
    const base = JSON.stringify({ query: `{ allocation(id: "${allocation}") { ${parents(depth + 1)} } }` });
    const padded = base.slice(0, -1) + " ".repeat(max - Buffer.byteLength(base)) + "}";
    post("oversized body", "exactly at the limit (whitespace padded), too deep", sized(padded), LIMIT, [200]);
  }

  // Malformed JSON and non-JSON bodies.
  const malformed = [
    "{",
    '{"query":',
    '{"query": "{ health { ok } }",}',
    "nul",
    "{'query': '{ health { ok } }'}",
    '{"query": "{ health { ok } }"}}',
    '{"query": "\\x"}',
    "\uFEFF{\"query\": \"{ health { ok } }\"",
    "[",
    `${"[".repeat(30_000)}`,
    `${"[".repeat(20_000)}${"]".repeat(20_000)}`,
    `{"query": ${"{\"a\":".repeat(6_000)}1${"}".repeat(6_000)}}`,
    "",
    " ",
    "<query>{ health { ok } }</query>",
    "query=%7B%20health%20%7B%20ok%20%7D%20%7D",
    "{ health { ok } }",
  ];
  malformed.forEach((body, i) => post("malformed JSON", `malformed body ${i}: ${JSON.stringify(body.slice(0, 40))}`, sized(body), INVALID, MALFORMED));
  const notParams: [string, string][] = [
    ["null", "null"],
    ["a number", "123"],
    ["a string", '"{ health { ok } }"'],
    ["true", "true"],
    ["query is a number", '{"query": 123}'],
    ["query is an object", '{"query": {"kind": "Document", "definitions": []}}'],
    ["query is null", '{"query": null}'],
    ["no query", '{"variables": {}}'],
    ["variables is a string", '{"query": "{ health { ok } }", "variables": "{}"}'],
    ["variables is an array", '{"query": "{ health { ok } }", "variables": [1]}'],
    ["operationName is an object", '{"query": "{ health { ok } }", "operationName": {}}'],
    ["extensions is a string", '{"query": "{ health { ok } }", "extensions": "x"}'],
    ["persisted query hash without a query", '{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}}'],
    ["prototype keys", '{"__proto__": {"query": "{ __schema { types { name } } }"}, "constructor": {"prototype": {"x": 1}}}'],
  ];
  for (const [name, body] of notParams) {
    post("malformed JSON", `JSON that is not GraphQL params: ${name}`, sized(body), INVALID, MALFORMED);
  }
  for (let i = 0; i < 10; i++) {
    const bytes = Buffer.alloc(64 + Math.floor(random() * 4_000));
    for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256);
    post("malformed JSON", `random bytes ${i} (${bytes.length} B)`, sized(bytes), INVALID, MALFORMED);
  }
  post("malformed JSON", "invalid UTF-8 in a string", sized(Buffer.concat([Buffer.from('{"query": "{ context(id: \\"'), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from('\\") { id } }"}')])), [...INVALID, ...FORBIDDEN], [...REQUEST_STATUSES, 403, 415]);

  // Wrong content types.
  const valid = JSON.stringify({ query: "{ __schema { types { name } } }" });
  for (const type of ["text/plain", "application/xml", "application/octet-stream", "image/png", "application/json; charset=utf-16", "application/jsonx", "multipart/form-data; boundary=x"]) {
    post("wrong content type", `content-type ${type}`, sized(valid), [...INVALID, ...FORBIDDEN], [...REQUEST_STATUSES, 403, 415], { headers: { "content-type": type } });
  }
  post("wrong content type", "no content-type", sized(valid), [...INVALID, ...FORBIDDEN], [...REQUEST_STATUSES, 403, 415], { headers: {} });
  post("wrong content type", "form-encoded introspection", sized("query=%7B__schema%7Btypes%7Bname%7D%7D%7D"), [...INVALID, ...FORBIDDEN], [...REQUEST_STATUSES, 403, 415], {
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  post("wrong content type", "multipart with a forged operations part", sized('--x\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{"query":"{ __schema { types { name } } }"}\r\n--x\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0": ["variables.file"]}\r\n--x--\r\n'), [...INVALID, ...FORBIDDEN], [...REQUEST_STATUSES, 403, 415], {
    headers: { "content-type": "multipart/form-data; boundary=x" },
  });
  post("wrong content type", "application/graphql body", sized("{ __schema { types { name } } }"), [...INVALID, ...FORBIDDEN], [...REQUEST_STATUSES, 403, 415], { headers: { "content-type": "application/graphql" } });

  // GET with mutations, and other methods.
  const get = (name: string, params: Record<string, string>, codes: readonly string[], statuses: readonly number[], auth: HttpAuth = "agent") =>
    http.push({ category: "GET and methods", name, method: "GET", path: `/graphql?${new URLSearchParams(params).toString()}`, auth, headers: {}, codes, statuses });
  get("GET with a mutation", { query: `mutation { patchContext(id: "${scoped}", patch: [{ op: add, path: "/g", value: 1 }]) { version } }` }, INVALID, [405]);
  get("GET with a mutation by operationName", { query: `query A { __typename } mutation B { patchContext(id: "${scoped}", patch: []) { version } }`, operationName: "B" }, INVALID, [405]);
  get("GET with a mutation, as a viewer", { query: `mutation { patchContext(id: "${scoped}", patch: []) { version } }` }, INVALID, [405], "viewer");
  get("GET with a deep query", { query: `{ allocation(id: "${allocation}") { ${parents(depth + 1)} } }` }, LIMIT, [200]);
  get("GET with an alias flood", { query: `{ ${range(aliases + 1).map((i) => `a${i}: __typename`).join(" ")} }` }, LIMIT, [200]);
  get("GET with introspection", { query: "{ __schema { types { name } } }" }, FORBIDDEN, [200, 403]);
  get("GET with malformed variables", { query: "query Q($id: ID!) { context(id: $id) { id } }", variables: "{not json" }, INVALID, MALFORMED);
  get("GET without a query", {}, INVALID, MALFORMED);
  get("GET with a syntax error", { query: "{ health { ok" }, INVALID, [200, 400]);
  get("GET with malformed extensions", { query: "{ __typename }", extensions: "[" }, INVALID, MALFORMED);
  for (const method of ["PUT", "DELETE", "PATCH"]) {
    http.push({ category: "GET and methods", name: `${method} with a query`, method, path: "/graphql", auth: "agent", headers: json, body: sized(JSON.stringify({ query: "{ health { ok } }" })), codes: INVALID, statuses: [405] });
  }

  // Batches (off by default).
  const batch = (n: number) => JSON.stringify(range(n).map(() => ({ query: "{ health { ok } }" })));
  for (const n of [0, 1, 2, 10, 500]) post("batch array", `batch of ${n}`, sized(batch(n)), INVALID, MALFORMED);
  post("batch array", "batch of hostile operations", sized(JSON.stringify([{ query: "{ __schema { types { name } } }" }, { query: `{ ${"__typename ".repeat(100)}}` }])), INVALID, MALFORMED);
  post("batch array", "batch of mutations", sized(JSON.stringify(range(50).map((i) => ({ query: `mutation { patchContext(id: "${scoped}", patch: [{ op: add, path: "/b${i}", value: 1 }]) { version } }` })))), INVALID, MALFORMED);

  // Missing, malformed and wrong credentials.
  const unauthenticated = (name: string, auth: HttpAuth, query = "{ health { ok } }") =>
    post("authorization", name, sized(JSON.stringify({ query })), ["UNAUTHENTICATED"], [401], { auth });
  unauthenticated("no Authorization header", "none");
  unauthenticated("no Authorization header, introspection", "none", "{ __schema { types { name } } }");
  unauthenticated("no Authorization header, a mutation", "none", `mutation { patchContext(id: "${scoped}", patch: []) { version } }`);
  unauthenticated("no Authorization header, a deep query", "none", `{ allocation(id: "${allocation}") { ${parents(depth + 1)} } }`);
  for (const header of [
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Token sc_abc",
    "Bearer sc_not-a-configured-key",
    "Bearer sc_a sc_b",
    `Bearer ${"k".repeat(8_000)}`,
    "Bearer \t",
    "bearer",
    "sc_only-the-key",
    "Bearer null",
    "Bearer undefined",
    "Bearer {}",
  ]) {
    unauthenticated(`Authorization ${JSON.stringify(header.slice(0, 40))}`, { header });
  }

  // --- WebSocket protocol abuse ------------------------------------------------------------
  const ws: WsProtocolCase[] = [];
  const subscribeMessage = (id: string, query: string) => () => JSON.stringify({ id, type: "subscribe", payload: { query } });
  const close = (name: string, messages: WsProtocolCase["messages"], closeCodes: readonly number[], extra: Partial<WsProtocolCase> = {}) =>
    ws.push({ category: "ws protocol", name, protocol: "graphql-transport-ws", init: "agent", messages, closeCodes, ...extra });
  const TOO_BIG = [1009];
  close("subscribe message over the limit", [subscribeMessage("1", `{ context(id: "${"x".repeat(max)}") { id } }`)], TOO_BIG);
  close("10 MB subscribe message", [subscribeMessage("1", `{ context(id: "${"x".repeat(tenMb)}") { id } }`)], TOO_BIG, { heavy: true });
  close("10 MB of variables", [() => JSON.stringify({ id: "1", type: "subscribe", payload: { query: "{ __typename }", variables: { v: "v".repeat(tenMb) } } })], TOO_BIG, { heavy: true });
  close("binary frame over the limit", [() => Buffer.alloc(max + 1)], TOO_BIG);
  close("connection_init over the limit", [], TOO_BIG, { init: { authorization: "x".repeat(max + 10) } });
  close("malformed JSON message", [() => "{"], [4400]);
  close("non-object message", [() => "[1, 2]"], [4400]);
  close("unknown message type", [() => JSON.stringify({ type: "explode" })], [4400]);
  close("subscribe without payload", [() => JSON.stringify({ id: "1", type: "subscribe" })], [4400]);
  close("subscribe with a non-string query", [() => JSON.stringify({ id: "1", type: "subscribe", payload: { query: 1 } })], [4400]);
  close("subscribe without an id", [() => JSON.stringify({ type: "subscribe", payload: { query: "{ __typename }" } })], [4400]);
  close("variables that are a string", [() => JSON.stringify({ id: "1", type: "subscribe", payload: { query: "{ __typename }", variables: "{}" } })], [4400]);
  close("operationName that is a number", [() => JSON.stringify({ id: "1", type: "subscribe", payload: { query: "{ __typename }", operationName: 5 } })], [4400]);
  close("second connection_init", [() => JSON.stringify({ type: "connection_init" })], [4429]);
  close("deeply nested JSON message", [() => `${"[".repeat(30_000)}${"]".repeat(30_000)}`], [4400]);
  close(
    "duplicate subscription id",
    [subscribeMessage("dup", `subscription { contextChanges(contextIds: ["${scoped}"]) { changes { seq } } }`), subscribeMessage("dup", "{ __typename }")],
    [4409],
  );
  close("subscribe before connection_init", [subscribeMessage("1", "{ __typename }")], [4401], { init: null });
  close("no credentials", [], [4403], { init: {} });
  close("wrong key", [], [4403], { init: { authorization: "Bearer sc_not-a-configured-key" } });
  close("malformed authorization", [], [4403], { init: { authorization: "Basic dXNlcjpwYXNz" } });
  close("authorization of the wrong type", [], [4403], { init: { authorization: { bearer: "x" } } });
  close("connectionParams with prototype keys", [], [4403], { init: JSON.parse('{"__proto__": {"authorization": "Bearer x"}}') as Record<string, unknown> });
  // The server agrees to no subprotocol, so `ws` on the client side fails the handshake (1006).
  close("unknown subprotocol", [], [1002, 1006, 4406], { protocol: "graphql-ws" });
  close("no subprotocol", [], [1002, 4406], { protocol: null });

  return { operations, http, ws };
}

/** `bytes` cut into pieces of `size`. */
function chunk(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return out;
}
