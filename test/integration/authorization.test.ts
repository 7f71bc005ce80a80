// Proves API keys' authorization: every root field of the schema x admin, agent and viewer x inside and outside the key's scope, on every transport, against this file's own table of the spec; authentication over HTTP, SSE and WebSocket; agents kept off the budget; scope on delivery, on the contexts list (its cursors and hasNextPage too) and on actors; introspection and suggestions under each SWARM_INTROSPECTION setting; /metrics for admins only.
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { beforeAll, describe, expect, test } from "vitest";
import { schema } from "../../schema/index.js";
import type { Introspection } from "../../src/config.js";
import { generateKey, type Role } from "../../src/security/auth.js";
import type { Keys } from "../../src/redis/keys.js";
import { deploymentKeys } from "../../src/server/app.js";
import { LIST_SCAN_LIMIT } from "../../src/store/contexts.js";
import { useTestServer } from "../helpers/app.js";
import { Backoff } from "../helpers/backoff.js";
import { sseResults, type ErrorJson } from "../helpers/feed-client.js";
import { dropFromIndex, fileInIndex, readIndex } from "../helpers/indexes.js";
import { testKeys } from "../helpers/keys.js";
import { redisState } from "../helpers/redis-state.js";

// ---------------------------------------------------------------------------------------------
// Clients: plain HTTP, graphql-ws and SSE, each presenting a key (or none).

interface Call {
  readonly query: string;
  readonly variables?: Record<string, unknown>;
}

interface Result {
  readonly data?: Record<string, unknown> | null;
  readonly errors?: readonly ErrorJson[];
}

/** What a transport answered: the (first) result, and the HTTP status or WebSocket close code. */
interface Outcome {
  readonly result: Result;
  readonly status?: number;
  readonly closeCode?: number;
}

type Transport = "http" | "ws" | "sse";
type Streaming = Exclude<Transport, "http">;

/** A live operation over graphql-ws or SSE: everything received so far. */
interface Stream {
  readonly results: Result[];
  readonly ended: boolean;
  readonly status?: number;
  readonly closeCode?: number;
  /** Resolves as soon as `check` holds; rejects when the stream ends first or after 15 s. */
  until(check: () => boolean, what: string): Promise<void>;
  close(): void;
}

const keys = testKeys("in-");
const KEY: Record<Role, string> = { admin: keys.admin.authorization, agent: keys.agent.authorization, viewer: keys.viewer.authorization };
const ROLES: readonly Role[] = ["admin", "agent", "viewer"];

const server = useTestServer({ keys: keys.ring });
let redisKeys: Keys;

beforeAll(() => {
  redisKeys = deploymentKeys(server.config);
});

function headers(authorization: string | undefined, accept: string): Record<string, string> {
  return { "content-type": "application/json", accept, ...(authorization === undefined ? {} : { authorization }) };
}

async function http(authorization: string | undefined, call: Call, url = server.url): Promise<Outcome> {
  const res = await fetch(url, { method: "POST", headers: headers(authorization, "application/json"), body: JSON.stringify(call) });
  return { status: res.status, result: (await res.json()) as Result };
}

function makeStream(close: () => void) {
  const listeners = new Set<() => void>();
  const stream: Stream & { ended: boolean; status?: number; closeCode?: number } = {
    results: [],
    ended: false,
    until: (check, what) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => settle(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(stream.results).slice(0, 2000)}`))), 15_000);
        const settle = (then: () => void) => {
          clearTimeout(timer);
          listeners.delete(recheck);
          then();
        };
        const recheck = () => {
          if (check()) settle(resolve);
          else if (stream.ended) settle(() => reject(new Error(`stream ended before ${what}; got ${JSON.stringify(stream.results)}, close code ${stream.closeCode}`)));
        };
        listeners.add(recheck);
        recheck();
      }),
    close,
  };
  const notify = () => [...listeners].forEach((listener) => listener());
  return {
    stream,
    push(result: Result) {
      stream.results.push(result);
      notify();
    },
    end() {
      stream.ended = true;
      notify();
    },
  };
}

/** graphql-ws with `connectionParams.authorization` (none when undefined), to `url` (default: this file's server). */
function openWs(authorization: string | undefined, call: Call, url = server.url): Stream {
  const client = createClient({
    url: url.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: true,
    connectionParams: authorization === undefined ? undefined : { authorization },
    on: { closed: (event) => (stream.closeCode = (event as { code: number }).code) },
  });
  const { stream, push, end } = makeStream(() => void client.dispose());
  client.subscribe(call, {
    next: (result) => push(result as Result),
    error: (err) => {
      // A closed connection rejects with its CloseEvent, a refused operation with its errors.
      if (typeof (err as { code?: unknown }).code === "number") stream.closeCode = (err as { code: number }).code;
      else push({ errors: Array.isArray(err) ? (err as ErrorJson[]) : [{ message: String(err) }] });
      end();
    },
    complete: end,
  });
  return stream;
}

/** SSE (POST with `accept: text/event-stream`) with the Authorization header (none when undefined). */
function openSse(authorization: string | undefined, call: Call, url = server.url): Stream {
  const abort = new AbortController();
  const { stream, push, end } = makeStream(() => abort.abort());
  void (async () => {
    try {
      const res = await fetch(url, { method: "POST", headers: headers(authorization, "text/event-stream"), body: JSON.stringify(call), signal: abort.signal });
      stream.status = res.status;
      if (!res.headers.get("content-type")?.includes("text/event-stream")) {
        push((await res.json()) as Result); // refused before any stream began
      } else {
        for await (const result of sseResults<Record<string, unknown>>(res)) push(result);
      }
    } catch (err) {
      if (!abort.signal.aborted) push({ errors: [{ message: String(err) }] });
    }
    end();
  })();
  return stream;
}

function open(transport: Streaming, authorization: string | undefined, call: Call, url = server.url): Stream {
  return transport === "ws" ? openWs(authorization, call, url) : openSse(authorization, call, url);
}

/**
 * Runs `call` (at `url`, default the file's server) and gives its result: a query's or mutation's,
 * or a subscription's first (or its refusal); `provoke` (see Expectation) makes a subscription
 * that sends nothing at once send one.
 */
async function execute(
  transport: Transport,
  authorization: string | undefined,
  call: Call,
  { provoke, url = server.url }: { provoke?: () => Promise<void>; url?: string } = {},
): Promise<Outcome> {
  if (transport === "http") return http(authorization, call, url);
  const stream = open(transport, authorization, call, url);
  const answered = () => stream.results.length > 0 || stream.ended;
  if (provoke) {
    // The stream gives no sign that it is subscribed but its first value: provoke until it comes.
    const backoff = new Backoff(20, 500);
    while (!answered()) {
      await provoke();
      await Promise.race([stream.until(answered, "a result").catch(() => undefined), backoff.wait()]);
    }
  }
  await stream.until(answered, "a result");
  stream.close();
  return { result: stream.results[0] ?? { errors: [] }, status: stream.status, closeCode: stream.closeCode };
}

/** Runs `call` as the admin over HTTP; throws unless it has data and no errors. */
async function asAdmin(query: string, variables: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const { result } = await http(KEY.admin, { query, variables });
  if (result.errors?.length || !result.data) throw new Error(`admin ${query}: ${JSON.stringify(result.errors)}`);
  return result.data;
}

const codes = (result: Result) => result.errors?.map((e) => e.extensions?.code);

// ---------------------------------------------------------------------------------------------
// Fixtures, made by the admin: a context with a budget and a policy, an allocation and a held lock.

type Scope = "in" | "out";

interface Fixture {
  /** `in-<n>` (inside the agent's and viewer's scope) or `out-<n>`. */
  readonly id: string;
  /** An id of the same scope that no context has. */
  readonly newId: string;
  readonly allocationId: string;
  readonly lock: { readonly name: string; readonly token: number };
}

const LIMITS = { credits: 1000, tokens: 50_000 };
let serial = 0;

async function fixture(scope: Scope): Promise<Fixture> {
  const id = `${scope}-${++serial}`;
  const document = { resources: { limits: LIMITS }, policy: { allocation: { maxShare: 0.5 } }, blackboard: { step: 0 } };
  await asAdmin(`mutation($id: ID!, $document: JSON!) { createContext(id: $id, document: $document) { id } }`, { id, document });
  await asAdmin(`mutation($id: ID!) { mergeContext(id: $id, merge: { blackboard: { step: 1 } }) { version } }`, { id });
  const allocation = await asAdmin(`mutation($id: ID!) { allocate(contextId: $id, request: [{ kind: "credits", amount: 100 }], mode: EXACT) { id } }`, { id });
  const lock = await asAdmin(`mutation($id: ID!) { acquireLock(contextId: $id, name: "held", holder: "fixture", leaseMs: 600000) { token } }`, { id });
  return {
    id,
    newId: `${id}-new`,
    allocationId: (allocation.allocate as { id: string }).id,
    lock: { name: "held", token: (lock.acquireLock as { token: number }).token },
  };
}

/**
 * Everything in Redis a call on these fixtures could touch: each one's context keys and its new
 * id's, and the deployment's (cheaper than every key of a prefix that holds every test's fixtures).
 */
async function fingerprint(...fixtures: Fixture[]) {
  const contexts = [];
  for (const fx of fixtures) {
    const context = await redisState(server.redis, redisKeys.contextBase(fx.id));
    contexts.push({ context, created: await redisState(server.redis, redisKeys.contextBase(fx.newId)) });
  }
  return { contexts, epoch: await server.redis.get(redisKeys.epoch), index: await readIndex(server.redis, redisKeys, "contexts"),
    byUpdate: await readIndex(server.redis, redisKeys, "byUpdate"),
  };
}

// ---------------------------------------------------------------------------------------------
// The spec, as this test reads it: who may call each root field, and a call that succeeds when allowed.

interface Expectation {
  readonly roles: readonly Role[];
  /** Whether the call names a context, so that the key's scope decides too; if not, only the role does. */
  readonly namesContext: boolean;
  readonly call: (fx: Fixture) => Call;
  /**
   * For a subscription that sends nothing at once: what makes it send its first value (done
   * again, backing off, until a result comes or the stream ends). It must change nothing.
   */
  readonly provoke?: (fx: Fixture) => Promise<void>;
}

const EVERYONE: readonly Role[] = ["admin", "agent", "viewer"];
const WRITERS: readonly Role[] = ["admin", "agent"];
const ADMINS: readonly Role[] = ["admin"];

const onContext = (roles: readonly Role[], call: (fx: Fixture) => Call): Expectation => ({ roles, namesContext: true, call });
const anywhere = (roles: readonly Role[], call: (fx: Fixture) => Call): Expectation => ({ roles, namesContext: false, call });
const withId = (query: string) => (fx: Fixture) => ({ query, variables: { id: fx.id } });
const withAllocation = (query: string) => (fx: Fixture) => ({ query, variables: { a: fx.allocationId } });
const withLock = (query: string) => (fx: Fixture) => ({ query, variables: { id: fx.id, name: fx.lock.name, token: fx.lock.token } });

const EXPECTED: Readonly<Record<string, Expectation>> = {
  "Query.context": onContext(EVERYONE, withId(`query($id: ID!) { context(id: $id) { id version document locks { name } } }`)),
  "Query.contexts": anywhere(EVERYONE, () => ({ query: `{ contexts(first: 5) { edges { node { id } } } }` })),
  "Query.allocation": onContext(EVERYONE, (fx) => ({ query: `query($id: ID!) { allocation(id: $id) { id status } }`, variables: { id: fx.allocationId } })),
  "Query.health": anywhere(EVERYONE, () => ({ query: `{ health { ok state } }` })),
  "Query.me": anywhere(EVERYONE, () => ({ query: `{ me { name role scope } }` })),
  "Query.serverInstances": anywhere(ADMINS, () => ({ query: `{ serverInstances { id version subscriptions } }` })),
  "Mutation.createContext": anywhere(ADMINS, (fx) => ({
    query: `mutation($id: ID!) { createContext(id: $id, document: { blackboard: {} }) { id } }`,
    variables: { id: fx.newId },
  })),
  "Mutation.deleteContext": onContext(ADMINS, withId(`mutation($id: ID!) { deleteContext(id: $id) { id seq } }`)),
  "Mutation.rollbackContext": onContext(ADMINS, withId(`mutation($id: ID!) { rollbackContext(id: $id, toVersion: 1) { version } }`)),
  "Mutation.reinitialize": anywhere(ADMINS, () => ({ query: `mutation { reinitialize(confirm: "the state is lost") }` })),
  "Mutation.patchContext": onContext(WRITERS, withId(`mutation($id: ID!) { patchContext(id: $id, patch: [{ op: add, path: "/blackboard/x", value: 1 }]) { version } }`)),
  "Mutation.mergeContext": onContext(WRITERS, withId(`mutation($id: ID!) { mergeContext(id: $id, merge: { blackboard: { x: 1 } }) { version } }`)),
  "Mutation.allocate": onContext(WRITERS, withId(`mutation($id: ID!) { allocate(contextId: $id, request: [{ kind: "credits", amount: 10 }], mode: EXACT) { id } }`)),
  "Mutation.reportUsage": onContext(WRITERS, withAllocation(`mutation($a: ID!) { reportUsage(allocationId: $a, usage: [{ kind: "credits", amount: 1 }]) { id } }`)),
  "Mutation.release": onContext(WRITERS, withAllocation(`mutation($a: ID!) { release(allocationId: $a) { id status } }`)),
  "Mutation.renewAllocation": onContext(WRITERS, withAllocation(`mutation($a: ID!) { renewAllocation(allocationId: $a, leaseMs: 600000) { id expiresAt } }`)),
  "Mutation.acquireLock": onContext(WRITERS, withId(`mutation($id: ID!) { acquireLock(contextId: $id, name: "another", holder: "t", leaseMs: 600000) { token } }`)),
  "Mutation.renewLock": onContext(WRITERS, withLock(`mutation($id: ID!, $name: String!, $token: Int!) { renewLock(contextId: $id, name: $name, token: $token, leaseMs: 600000) { token } }`)),
  "Mutation.releaseLock": onContext(WRITERS, withLock(`mutation($id: ID!, $name: String!, $token: Int!) { releaseLock(contextId: $id, name: $name, token: $token) { token } }`)),
  // With a replay from seq 1, an allowed subscription has a first batch at once.
  "Subscription.contextChanges": onContext(EVERYONE, (fx) => ({
    query: `subscription($ids: [ID!], $after: [CursorInput!]) { contextChanges(contextIds: $ids, after: $after) { changes { contextId seq actor } } }`,
    variables: { ids: [fx.id], after: [{ contextId: fx.id, seq: 1 }] },
  })),
  "Subscription.watchSlice": onContext(EVERYONE, withId(`subscription($id: ID!) { watchSlice(id: $id, paths: ["/blackboard"]) { version slice } }`)),
  // Sends nothing until a refusal: the admin's over-budget allocate (which changes nothing) makes one.
  "Subscription.ledgerRefusals": {
    ...onContext(EVERYONE, (fx) => ({ query: `subscription($id: ID!) { ledgerRefusals(contextId: $id) { contextId code actor } }`, variables: { id: fx.id } })),
    provoke: async (fx) => {
      const { result } = await http(KEY.admin, {
        query: `mutation($id: ID!) { allocate(contextId: $id, request: [{ kind: "credits", amount: 1000000 }], mode: EXACT) { id } }`,
        variables: { id: fx.id },
      });
      expect(codes(result)).toEqual(["INSUFFICIENT_RESOURCES"]);
    },
  },
};

const ROOT_TYPES = [schema.getQueryType()!, schema.getMutationType()!, schema.getSubscriptionType()!];
/** Every root field of the real schema, as "Type.field". */
const SCHEMA_FIELDS = ROOT_TYPES.flatMap((type) => Object.keys(type.getFields()).map((field) => `${type.name}.${field}`));

const fieldName = (field: string) => field.split(".")[1]!;
const transportsOf = (field: string): readonly Transport[] => (field.startsWith("Subscription.") ? ["ws", "sse"] : ["http", "ws"]);

function expectationOf(field: string): Expectation {
  const expectation = EXPECTED[field];
  if (!expectation) throw new Error(`root field ${field} is in the schema but has no expectation in this test's table: add its rule`);
  return expectation;
}

function mayCall(expectation: Expectation, role: Role, scope: Scope): boolean {
  return expectation.roles.includes(role) && (role === "admin" || scope === "in" || !expectation.namesContext);
}

/** Every role x scope x transport of one field; a field that names no context is checked per role only. */
function casesOf(field: string): [Role, Scope, Transport][] {
  const scopes: readonly Scope[] = EXPECTED[field]?.namesContext === false ? ["in"] : ["in", "out"];
  return ROLES.flatMap((role) => scopes.flatMap((scope) => transportsOf(field).map((transport): [Role, Scope, Transport] => [role, scope, transport])));
}

// ---------------------------------------------------------------------------------------------

describe("the authorization matrix", () => {
  test("the table of expectations names exactly the schema's root fields", () => {
    const missing = SCHEMA_FIELDS.filter((field) => !EXPECTED[field]);
    const unknown = Object.keys(EXPECTED).filter((field) => !SCHEMA_FIELDS.includes(field));
    expect({ missing, unknown }, "schema root fields missing from the table, and table entries the schema lacks").toEqual({ missing: [], unknown: [] });
  });

  test("an agent reaches no out- allocation through allocate's parentId on an in- context", async () => {
    const [inside, outside] = [await fixture("in"), await fixture("out")];
    const before = await fingerprint(inside, outside);
    const { result } = await execute("http", KEY.agent, {
      query: `mutation($id: ID!, $parent: ID!) { allocate(contextId: $id, parentId: $parent, request: [{ kind: "credits", amount: 1 }], mode: EXACT) { id } }`,
      variables: { id: inside.id, parent: outside.allocationId },
    });
    expect(result.errors, JSON.stringify(result)).toHaveLength(1);
    expect(["FORBIDDEN", "VALIDATION_FAILED"]).toContain(codes(result)?.[0]);
    expect(await fingerprint(inside, outside)).toEqual(before);
  });

  describe.each(SCHEMA_FIELDS)("%s", (field) => {
    test.each(casesOf(field))("%s, %s scope, over %s", async (role, scope, transport) => {
      const expectation = expectationOf(field);
      const fx = await fixture(scope);
      const call = async () => (await execute(transport, KEY[role], expectation.call(fx), { provoke: expectation.provoke && (() => expectation.provoke!(fx)) })).result;
      if (mayCall(expectation, role, scope)) {
        const result = await call();
        expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
        expect(result.data?.[fieldName(field)]).toBeTruthy();
      } else {
        await server.refused("FORBIDDEN", call, () => fingerprint(fx));
      }
    });
  });
});

test.each(ROLES)("me: the %s key's name, role and scope", async (role) => {
  const { result } = await execute("http", KEY[role], { query: `{ me { name role scope } }` });
  expect(result.errors).toBeUndefined();
  expect(result.data?.me).toEqual({ name: keys[role].name, role: role.toUpperCase(), scope: keys[role].scope });
});

describe("without a valid key", () => {
  const CREDENTIALS: Record<string, string | undefined> = {
    "no key": undefined,
    "an unknown key": `Bearer ${generateKey()}`,
    "the admin's key in another scheme": `Basic ${keys.admin.key}`,
  };
  let fx: Fixture;
  beforeAll(async () => {
    fx = await fixture("in");
  });

  const cases = SCHEMA_FIELDS.flatMap((field) => Object.keys(CREDENTIALS).map((credentials) => [field, credentials] as const));
  test.each(cases)("%s with %s: UNAUTHENTICATED, HTTP status 401", async (field, credentials) => {
    const transport = field.startsWith("Subscription.") ? "sse" : "http";
    let status: number | undefined;
    await server.refused(
      "UNAUTHENTICATED",
      async () => {
        const outcome = await execute(transport, CREDENTIALS[credentials], expectationOf(field).call(fx));
        status = outcome.status;
        return outcome.result;
      },
      () => fingerprint(fx),
    );
    expect(status).toBe(401);
  });

  test.each(Object.keys(CREDENTIALS))("a WebSocket connection with %s is closed with 4403", async (credentials) => {
    const stream = openWs(CREDENTIALS[credentials], expectationOf("Subscription.contextChanges").call(fx));
    await stream.until(() => stream.ended, "the connection's end");
    expect(stream.closeCode).toBe(4403);
    expect(stream.results).toEqual([]);
  });
});

describe("agents and the admin settings (budget and allocation caps)", () => {
  const patch = (ops: unknown[]) => (fx: Fixture) => ({
    query: `mutation($id: ID!, $patch: [JSONPatchOperation!]!) { patchContext(id: $id, patch: $patch) { version document } }`,
    variables: { id: fx.id, patch: ops },
  });
  const merge = (value: unknown) => (fx: Fixture) => ({
    query: `mutation($id: ID!, $merge: JSON!) { mergeContext(id: $id, merge: $merge) { version document } }`,
    variables: { id: fx.id, merge: value },
  });
  const BUDGET_CHANGES: [string, (fx: Fixture) => Call][] = [
    ["patch: replace /resources/limits/credits", patch([{ op: "replace", path: "/resources/limits/credits", value: 1e9 }])],
    ["patch: remove /resources", patch([{ op: "remove", path: "/resources" }])],
    ["patch: add /resources/limits/x", patch([{ op: "add", path: "/resources/limits/x", value: 5 }])],
    ["patch: move from /resources/limits", patch([{ op: "move", from: "/resources/limits/credits", path: "/blackboard/credits" }])],
    ["patch: copy onto /resources/limits", patch([{ op: "copy", from: "/blackboard", path: "/resources/limits" }])],
    ["patch: replace the whole document", patch([{ op: "replace", path: "", value: { blackboard: {} } }])],
    ["patch: a blackboard write, then a budget write", patch([{ op: "add", path: "/blackboard/y", value: 1 }, { op: "remove", path: "/resources/limits" }])],
    ["merge: {resources: {limits: ...}}", merge({ resources: { limits: { credits: 1e9 } } })],
    ["merge: {resources: {limits: null}}", merge({ resources: { limits: null } })],
    ["merge: {resources: null}", merge({ resources: null })],
    ["merge: {resources: a string}", merge({ resources: "none" })],
    ["patch: replace /policy/allocation/maxShare", patch([{ op: "replace", path: "/policy/allocation/maxShare", value: 1 }])],
    ["patch: add /policy/allocation/maxDepth", patch([{ op: "add", path: "/policy/allocation/maxDepth", value: 100_000 }])],
    ["patch: add /policy/allocation/defaultLeaseMs", patch([{ op: "add", path: "/policy/allocation/defaultLeaseMs", value: 1 }])],
    ["patch: replace /policy/allocation", patch([{ op: "replace", path: "/policy/allocation", value: { maxShare: 1 } }])],
    ["patch: remove /policy", patch([{ op: "remove", path: "/policy" }])],
    ["patch: move from /policy/allocation/maxShare", patch([{ op: "move", from: "/policy/allocation/maxShare", path: "/blackboard/share" }])],
    ["merge: {policy: {allocation: {maxShare: 1, maxDepth: 100000}}}", merge({ policy: { allocation: { maxShare: 1, maxDepth: 100_000 } } })],
    ["merge: {policy: {allocation: {defaultLeaseMs: ...}}}", merge({ policy: { allocation: { defaultLeaseMs: 1 } } })],
    ["merge: {policy: {allocation: null}}", merge({ policy: { allocation: null } })],
    ["merge: {policy: a string}", merge({ policy: "none" })],
  ];
  const DOCUMENT_CHANGES: [string, (fx: Fixture) => Call][] = [
    ["patch: add /blackboard/x", patch([{ op: "add", path: "/blackboard/x", value: 1 }])],
    ["patch: test /resources/limits, then add /blackboard/x", patch([{ op: "test", path: "/resources/limits", value: LIMITS }, { op: "add", path: "/blackboard/x", value: 1 }])],
    ["patch: add /resources/notes (beside the limits)", patch([{ op: "add", path: "/resources/notes", value: "n" }])],
    ["merge: {blackboard: ...}", merge({ blackboard: { x: 1 } })],
    ["merge: {resources: {notes: ...}} (beside the limits)", merge({ resources: { notes: "n" } })],
    ["patch: add /policy/mode", patch([{ op: "add", path: "/policy/mode", value: "explore" }])],
    ["patch: add an allocation profile", patch([{ op: "add", path: "/policy/allocation/profiles", value: { small: { request: { credits: 5 } } } }])],
    ["merge: {policy: {allocation: {profiles: ...}}}", merge({ policy: { allocation: { profiles: { small: { request: { credits: 5 }, leaseMs: 1000 } } } } })],
  ];

  test.each(BUDGET_CHANGES)("the agent's %s: FORBIDDEN, nothing changed", async (_, call) => {
    const fx = await fixture("in");
    await server.refused("FORBIDDEN", async () => (await execute("http", KEY.agent, call(fx))).result, () => fingerprint(fx));
  });

  test.each(DOCUMENT_CHANGES)("the agent's %s: a new version by agent-1, the admin settings intact", async (_, call) => {
    const fx = await fixture("in");
    const { result } = await execute("http", KEY.agent, call(fx));
    expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
    const read = await asAdmin(
      `query($id: ID!) { context(id: $id) { version updatedBy slice(paths: ["/resources/limits", "/policy/allocation/maxShare"]) } }`,
      { id: fx.id },
    );
    expect(read.context).toEqual({
      version: 3,
      updatedBy: "agent-1",
      slice: { "/resources/limits": LIMITS, "/policy/allocation/maxShare": 0.5 },
    });
  });
});

describe("scope on delivery, and actors", () => {
  const CHANGES = `subscription($ids: [ID!], $idPrefix: String, $after: [CursorInput!]) {
    contextChanges(contextIds: $ids, idPrefix: $idPrefix, after: $after) { changes { contextId seq kind actor } }
  }`;
  type Change = { contextId: string; seq: number; kind: string; actor: string };
  const changesOf = (stream: Stream) =>
    stream.results.flatMap((r) => ((r.data?.contextChanges as { changes: Change[] } | undefined)?.changes ?? []));
  const sees = (stream: Stream, contextId: string, seq: number) => () => changesOf(stream).some((c) => c.contextId === contextId && c.seq === seq);

  describe.each(["ws", "sse"] as const)("over %s", (transport) => {
    test("viewers' and agents' feeds without ids (or with idPrefix \"\") carry in- contexts only; the admin's carries both", async () => {
      // A replay from an in- context tells that a subscription is live: the contexts made after it are new to it.
      const ready = await fixture("in");
      const after = [{ contextId: ready.id, seq: 0 }];
      const feeds = {
        viewer: open(transport, KEY.viewer, { query: CHANGES, variables: { after } }),
        viewerPrefix: open(transport, KEY.viewer, { query: CHANGES, variables: { idPrefix: "", after } }),
        agent: open(transport, KEY.agent, { query: CHANGES, variables: { after } }),
        admin: open(transport, KEY.admin, { query: CHANGES, variables: { after } }),
      };
      for (const feed of Object.values(feeds)) await feed.until(sees(feed, ready.id, 1), "the replay");

      const inside = `in-d-${++serial}`;
      const outside = `out-d-${serial}`;
      const create = `mutation($id: ID!) { createContext(id: $id, document: { blackboard: {} }) { id } }`;
      const write = `mutation($id: ID!) { patchContext(id: $id, patch: [{ op: add, path: "/blackboard/n", value: 1 }]) { seq } }`;
      await asAdmin(create, { id: outside });
      await asAdmin(create, { id: inside });
      await asAdmin(write, { id: outside });
      // The marker, written by the agent: once it has arrived, so would have every earlier change.
      const marker = await http(KEY.agent, { query: write, variables: { id: inside } });
      expect(marker.result.errors).toBeUndefined();

      await feeds.admin.until(() => sees(feeds.admin, inside, 2)() && sees(feeds.admin, outside, 2)(), "both contexts' changes");
      for (const [name, feed] of Object.entries(feeds)) {
        if (name === "admin") continue;
        await feed.until(sees(feed, inside, 2), "the in- marker");
        expect(changesOf(feed).filter((c) => !c.contextId.startsWith("in-")), `${name} got changes outside its scope`).toEqual([]);
      }
      const actors = changesOf(feeds.admin)
        .filter((c) => c.contextId === inside || c.contextId === outside)
        .map((c) => [c.contextId, c.seq, c.actor]);
      expect(actors.sort()).toEqual(
        [
          [inside, 1, "admin-1"],
          [inside, 2, "agent-1"],
          [outside, 1, "admin-1"],
          [outside, 2, "admin-1"],
        ].sort(),
      );
      Object.values(feeds).forEach((feed) => feed.close());
    });

    const OUTSIDE_IN_ARGUMENTS: [string, (inside: string, outside: string) => Record<string, unknown>][] = [
      ["contextIds naming an out- context among in- ones", (inside, outside) => ({ ids: [inside, outside] })],
      ["after naming an out- context", (_, outside) => ({ after: [{ contextId: outside, seq: 0 }] })],
      ["after naming an in- and an out- context", (inside, outside) => ({ after: [{ contextId: inside, seq: 0 }, { contextId: outside, seq: 0 }] })],
    ];
    test.each(OUTSIDE_IN_ARGUMENTS.flatMap(([what, variables]) => (["viewer", "agent"] as const).map((role) => [role, what, variables] as const)))(
      "%s: contextChanges with %s is FORBIDDEN",
      async (role, _, variables) => {
        const [inside, outside] = [await fixture("in"), await fixture("out")];
        const call = { query: CHANGES, variables: variables(inside.id, outside.id) };
        await server.refused("FORBIDDEN", async () => (await execute(transport, KEY[role], call)).result, () => fingerprint(inside, outside));
      },
    );
  });

  interface ContextsPage {
    readonly edges: { cursor: string; node: { id: string } }[];
    readonly pageInfo: { hasNextPage: boolean; endCursor: string | null };
  }
  /** Every page of `contexts` the key sees, following endCursor until hasNextPage is false. */
  const walkContexts = async (authorization: string, first: number, idPrefix: string | null = null) => {
    const pages: ContextsPage[] = [];
    let after: string | null = null;
    for (;;) {
      const { result } = await http(authorization, {
        query: `query($first: Int, $after: String, $idPrefix: String) {
          contexts(first: $first, after: $after, idPrefix: $idPrefix) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } }
        }`,
        variables: { first, after, idPrefix },
      });
      expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
      const page = result.data!.contexts as ContextsPage;
      pages.push(page);
      if (!page.pageInfo.hasNextPage) return pages;
      after = page.pageInfo.endCursor;
    }
  };
  const idsOf = (pages: readonly ContextsPage[]) => pages.flatMap((page) => page.edges.map((edge) => edge.node.id));

  test("the contexts list holds only in- ids for viewers and agents, every id for the admin", async () => {
    await fixture("in");
    await fixture("out");
    const all = idsOf(await walkContexts(KEY.admin, 50));
    expect(all.some((id) => id.startsWith("out-"))).toBe(true);
    for (const role of ["viewer", "agent"] as const) {
      expect(idsOf(await walkContexts(KEY[role], 50)), role).toEqual(all.filter((id) => id.startsWith("in-")));
    }
    // totalCount counts the same: the scope's prefixes, not every id.
    const total = async (authorization: string) => (await http(authorization, { query: "{ contexts(first: 1) { totalCount } }" })).result.data!.contexts as { totalCount: number };
    expect((await total(KEY.admin)).totalCount).toBe(all.length);
    for (const role of ["viewer", "agent"] as const) expect((await total(KEY[role])).totalCount, role).toBe(all.filter((id) => id.startsWith("in-")).length);
  });

  test("the contexts list's cursors and hasNextPage show nothing outside the scope, and a page reads a bounded part of the index", async () => {
    await fixture("in");
    await fixture("in");
    await fixture("out");
    // Index entries outside the scope, before, after and past the out- ids: each run enough that
    // walking past it takes more than one request's scan. (The index may hold ids of no context.)
    const fillers = ["hb", "io", "zz"].flatMap((head) => Array.from({ length: LIST_SCAN_LIMIT }, (_, i) => `${head}-${String(i).padStart(5, "0")}`));
    await fileInIndex(server.redis, redisKeys, "contexts", new Map(fillers.map((id) => [id, 0])));
    try {
      const outside = (id: string) => !id.startsWith("in-");
      const all = idsOf(await walkContexts(KEY.admin, 500));
      // A cursor reveals an id if it is the id, or its bytes hold it (base64url of it, say). Not
      // a search of the cursor's text: a random one of 208 characters holds "io-" now and then.
      const outsideIds = [...new Set([...all.filter(outside), ...fillers])];
      const revealsOutside = (cursor: string) => {
        const bytes = Buffer.from(cursor, "base64url").toString("latin1");
        return outsideIds.some((id) => cursor === id || bytes.includes(id));
      };
      expect(all.filter(outside).some((id) => id.startsWith("out-")), "the admin sees out- contexts").toBe(true);

      const probe = await walkContexts(KEY.viewer, 1, "out-");
      expect(probe, "a viewer's page of out- ids").toEqual([{ edges: [], pageInfo: { hasNextPage: false, endCursor: null } }]);

      const first = (await walkContexts(KEY.viewer, 500))[0]!;
      expect(first.edges, "a first page that stopped scanning within the hb- entries").toEqual([]);
      expect(first.pageInfo.hasNextPage).toBe(true);

      for (const role of ["viewer", "agent"] as const) {
        const pages = await walkContexts(KEY[role], 2);
        expect(idsOf(pages), role).toEqual(all.filter((id) => !outside(id)));
        expect(pages.at(-1)!.pageInfo.hasNextPage).toBe(false);
        const cursors = pages.flatMap((page) => [...page.edges.map((edge) => edge.cursor), page.pageInfo.endCursor ?? []].flat());
        expect(cursors.filter(revealsOutside), `${role}'s cursors revealing an id outside its scope`).toEqual([]);
        expect(new Set(cursors.map((cursor) => cursor.length)).size, "cursors all of one length, whatever the id").toBe(1);
      }
    } finally {
      await dropFromIndex(server.redis, redisKeys, "contexts", fillers);
    }
  });

  test("a cursor the server did not give is VALIDATION_FAILED", async () => {
    const call = { query: `{ contexts(first: 1, after: "${Buffer.from("out-1").toString("base64url")}") { edges { cursor } } }` };
    await server.refused("VALIDATION_FAILED", async () => (await http(KEY.viewer, call)).result, () => fingerprint());
  });

  test("every kind of change records the key's name as its actor", async () => {
    const fx = await fixture("in");
    const asAgent = async (query: string, variables: Record<string, unknown>) => {
      const { result } = await http(KEY.agent, { query, variables });
      expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
    };
    await asAgent(`mutation($id: ID!) { patchContext(id: $id, patch: [{ op: add, path: "/blackboard/a", value: 1 }]) { seq } }`, { id: fx.id });
    await asAgent(`mutation($a: ID!) { release(allocationId: $a) { id } }`, { a: fx.allocationId });
    await asAgent(`mutation($id: ID!) { acquireLock(contextId: $id, name: "agents", holder: "a", leaseMs: 600000) { token } }`, { id: fx.id });
    const read = await asAdmin(`query($id: ID!) { context(id: $id) { updatedBy history(afterSeq: 0) { kind actor } } }`, { id: fx.id });
    expect(read.context).toEqual({
      updatedBy: "agent-1",
      history: [
        { kind: "CREATED", actor: "admin-1" },
        { kind: "UPDATED", actor: "admin-1" },
        { kind: "ALLOCATED", actor: "admin-1" },
        { kind: "LOCK_ACQUIRED", actor: "admin-1" },
        { kind: "UPDATED", actor: "agent-1" },
        { kind: "RELEASED", actor: "agent-1" },
        { kind: "LOCK_ACQUIRED", actor: "agent-1" },
      ],
    });
  });
});

/** The roles that may introspect and get suggestions, under each SWARM_INTROSPECTION setting. */
const SEE_SCHEMA: Record<Introspection, readonly Role[]> = { authenticated: ROLES, admin: ["admin"], off: [] };

test("introspection is for every authenticated key by default", () => {
  expect(server.config.introspection).toBe("authenticated");
});

describe.each(["authenticated", "admin", "off"] as const)("the schema, with introspection %s", (introspection) => {
  // The default is this file's server's setting; the others get a server of their own.
  const other = introspection === "authenticated" ? undefined : useTestServer({ keys: keys.ring, introspection });
  const url = () => other?.url ?? server.url;
  const sees = (role: Role) => SEE_SCHEMA[introspection].includes(role);
  const INTROSPECTION = [`{ __schema { queryType { name } } }`, `{ __type(name: "Query") { name } }`];

  describe.each(["http", "ws", "sse"] as const)("over %s", (transport) => {
    test.each(INTROSPECTION.flatMap((query) => ROLES.map((role) => [query, role] as const)))("%s by the %s key", async (query, role) => {
      const { result } = await execute(transport, KEY[role], { query }, { url: url() });
      if (sees(role)) {
        expect(result.errors, JSON.stringify(result)).toBeUndefined();
        expect(JSON.stringify(result.data)).toContain('"Query"');
      } else {
        expect(codes(result), JSON.stringify(result)).toEqual(["FORBIDDEN"]);
        expect(result.data ?? null).toBeNull();
      }
    });

    test.each(ROLES)("a misspelt field by the %s key: VALIDATION_FAILED, with a suggestion only if it may see the schema", async (role) => {
      const { result } = await execute(transport, KEY[role], { query: `{ contxt(id: "in-x") { id } }` }, { url: url() });
      expect(codes(result), JSON.stringify(result)).toEqual(["VALIDATION_FAILED"]);
      const message = result.errors![0]!.message;
      expect(message).toContain("contxt");
      if (sees(role)) expect(message).toContain("Did you mean");
      else expect(message).not.toMatch(/did you mean|"context"/i);
    });
  });
});

describe("/metrics", () => {
  const metrics = (authorization?: string) => fetch(new URL("/metrics", server.url), { headers: authorization ? { authorization } : {} });

  test("the admin's key: 200 and the metrics", async () => {
    const res = await metrics(KEY.admin);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("swarm_requests_total");
  });

  test.each([
    ["an agent's key", 403, KEY.agent],
    ["a viewer's key", 403, KEY.viewer],
    ["no key", 401, undefined],
    ["an unknown key", 401, `Bearer ${generateKey()}`],
  ] as const)("%s: %i, and no metrics", async (_, status, authorization) => {
    const res = await metrics(authorization);
    expect(res.status).toBe(status);
    expect(await res.text()).not.toContain("swarm_requests_total");
  });
});

