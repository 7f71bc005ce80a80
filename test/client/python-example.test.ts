// Proves the Python example agent (examples/python/swarm_agent.py, standard library only) against a real server with API keys: two agents racing, one failing over from a dead endpoint, record every step exactly once under the fenced lock, keep a compare-and-set tally, release every allocation with its usage charged and leave the lock free; its gql() retry of a patch whose reply was lost applies the write once; its watcher prints every change after its cursor exactly once and in order, across a cut connection, and re-reads the context on a resync.
import type { ChildProcess } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, expect, test } from "vitest";
import { useTestServer } from "../helpers/app.js";
import { spawnJsonLines, type JsonLinesProcess } from "../helpers/json-lines-process.js";
import { testKeys } from "../helpers/keys.js";
import { startReplyDroppingProxy } from "../helpers/reply-dropping-proxy.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";

const SCRIPT = fileURLToPath(new URL("../../examples/python/swarm_agent.py", import.meta.url));
const keys = testKeys("py-");
const server = useTestServer({ keys: keys.ring });

type Line = Record<string, unknown> & { event: string };

const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
});

/** Runs `python3 swarm_agent.py <args>` with the agent key and `env` (SWARM_ID, SWARM_URL, ...), and nothing else of ours. */
function spawnAgent(args: readonly string[], env: Record<string, string>): JsonLinesProcess<Line> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("SWARM_")));
  const agent = spawnJsonLines<Line>("python3", [SCRIPT, ...args], { ...inherited, SWARM_KEY: keys.agent.key, PYTHONUNBUFFERED: "1", ...env });
  children.add(agent.child);
  void agent.exited.then(() => children.delete(agent.child));
  return agent;
}

/** Runs an operation with the admin key over HTTP; throws on any error. */
async function admin<T = Record<string, any>>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: keys.admin.authorization },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T; errors?: unknown[] };
  if (body.errors?.length || !body.data) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function createContext(id: string, document: Record<string, unknown>): Promise<number> {
  const data = await admin(`mutation($id: ID!, $d: JSON!) { createContext(id: $id, document: $d) { seq } }`, { id, d: document });
  return data.createContext.seq as number;
}

const appendTo = (id: string, value: unknown) =>
  admin(`mutation($id: ID!, $v: JSON) { patchContext(id: $id, patch: [{op: add, path: "/blackboard/log/-", value: $v}]) { seq } }`, { id, v: value });

const exited = async (agent: JsonLinesProcess<Line>) => expect(await agent.exited, `${JSON.stringify(agent.lines)} ${agent.stderr()}`).toBe(0);

test("two agents racing record every step once, release every allocation with its usage, and leave the lock free", async () => {
  const id = "py-swarm";
  const steps = 8;
  await createContext(id, { resources: { limits: { credits: 100 } }, policy: { stepCredits: 10 }, blackboard: {} });
  // An endpoint that resets every connection: agent A starts there and fails over to the server.
  const dead: Server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => dead.listen(0, "127.0.0.1", resolve));
  const deadUrl = `http://127.0.0.1:${(dead.address() as { port: number }).port}/graphql`;
  try {
    const env = { SWARM_ID: id, SWARM_STEPS: String(steps) };
    const a = spawnAgent(["run"], { ...env, SWARM_AGENT: "py-a", SWARM_URLS: `${deadUrl},${server.url}` });
    const b = spawnAgent(["run"], { ...env, SWARM_AGENT: "py-b", SWARM_URL: server.url });
    await Promise.all([exited(a), exited(b)]);
    expect(a.lines[0]).toMatchObject({ event: "retry", attempt: 1, next: server.url });

    const { context } = await admin(
      `query($id: ID!) { context(id: $id) { document heldLocks locks { name }
        budget { granted { kind amount } consumed { kind amount } available { kind amount } }
        allocations(first: 100) { totalCount edges { node { id status holder granted { kind amount } consumed { kind amount } } } } } }`,
      { id },
    );
    // No lost write: every step of both agents is in the log once, in the order of their fencing tokens.
    const log = context.document.blackboard.steps as { agent: string; step: number; token: number }[];
    const expected = ["py-a", "py-b"].flatMap((agent) => Array.from({ length: steps }, (_, i) => `${agent}:${i + 1}`));
    expect(log.map((s) => `${s.agent}:${s.step}`).sort()).toEqual(expected.sort());
    const tokens = log.map((s) => s.token);
    expect(tokens).toEqual([...new Set(tokens)].sort((x, y) => x - y));
    // The tally both agents incremented without the lock, by compare-and-set.
    expect(context.document.blackboard.done).toBe(2 * steps);

    const stepEvents = [...a.lines, ...b.lines].filter((line) => line.event === "step");
    expect(stepEvents).toHaveLength(2 * steps);
    const allocations = context.allocations.edges.map(({ node }: { node: Record<string, unknown> }) => node);
    expect(context.allocations.totalCount).toBe(2 * steps);
    expect(allocations.map((x: { id: string }) => x.id).sort()).toEqual(stepEvents.map((e) => e.allocation).sort());
    for (const allocation of allocations) {
      expect(allocation).toMatchObject({ status: "RELEASED", granted: [{ kind: "credits", amount: 10 }], consumed: [{ kind: "credits", amount: 3 }] });
    }
    expect(allocations.filter((x: { holder: string }) => x.holder === "py-a")).toHaveLength(steps);
    expect(context.budget).toEqual({
      granted: [{ kind: "credits", amount: 0 }],
      consumed: [{ kind: "credits", amount: 3 * 2 * steps }],
      available: [{ kind: "credits", amount: 100 - 3 * 2 * steps }],
    });
    expect({ heldLocks: context.heldLocks, locks: context.locks }).toEqual({ heldLocks: 0, locks: [] });
  } finally {
    await new Promise((resolve) => dead.close(resolve));
  }
});

test("gql() retries a patch whose reply was lost with the same opId, and the patch applies once", async () => {
  const id = "py-retry";
  await createContext(id, { blackboard: { log: [] } });
  const before = (await admin(`query($id: ID!) { context(id: $id) { version seq } }`, { id })).context;
  const proxy = await startReplyDroppingProxy(Number(new URL(server.url).port));
  try {
    const dropped = proxy.dropNextReplyContaining('"patchContext"');
    const agent = spawnAgent(["patch", JSON.stringify([{ op: "add", path: "/blackboard/log/-", value: "once" }])], {
      SWARM_ID: id,
      SWARM_URL: `http://127.0.0.1:${proxy.port}/graphql`,
    });
    await dropped;
    await exited(agent);
    const patched = agent.lines.find((line) => line.event === "patched");
    const retries = agent.lines.filter((line) => line.event === "retry");
    expect(retries).toHaveLength(1);
    expect(retries[0]!.opId).toBe(patched!.opId);
    // The retry was answered with the first outcome: the version the lost reply carried.
    expect(patched).toMatchObject({ version: before.version + 1, seq: before.seq + 1 });
  } finally {
    await proxy.close();
  }
  const { context } = await admin(`query($id: ID!, $after: Int) { context(id: $id) { version document history(afterSeq: $after) { kind } } }`, {
    id,
    after: before.seq,
  });
  expect(context).toEqual({ version: before.version + 1, document: { blackboard: { log: ["once"] } }, history: [{ kind: "UPDATED" }] });
});

test("watch prints every change after its cursor once, in order, across a cut connection", async () => {
  const id = "py-watch";
  const first = await createContext(id, { resources: { limits: { credits: 10 } }, blackboard: { log: [] } });
  await appendTo(id, 1);
  await appendTo(id, 2);
  // A proxy whose connections the test cuts, and holds (unanswered) while it makes changes.
  const open = new Set<Socket>();
  let held: (() => void)[] | null = null;
  const proxy = await startTcpProxy(Number(new URL(server.url).port), (client, upstream) => {
    open.add(client);
    client.on("close", () => open.delete(client));
    const relay = () => {
      client.pipe(upstream);
      upstream.pipe(client);
    };
    if (held) held.push(relay);
    else relay();
  });
  try {
    const watcher = spawnAgent(["watch", "--after", String(first), "--count", "9"], { SWARM_ID: id, SWARM_URL: `http://127.0.0.1:${proxy.port}/graphql` });
    const changes = () => watcher.lines.filter((line) => line.event === "change");
    await watcher.until(() => changes().length === 2, "the two changes made before it started");
    held = [];
    for (const socket of open) socket.destroy();
    await watcher.until((lines) => lines.some((line) => line.event === "reconnect"), "a reconnect");
    // While it is cut off: changes of every kind.
    await appendTo(id, 3);
    const allocation = (await admin(`mutation($id: ID!) { allocate(contextId: $id, request: [{kind: "credits", amount: 5}], mode: EXACT) { id } }`, { id })).allocate.id;
    await admin(`mutation($a: ID!) { reportUsage(allocationId: $a, usage: [{kind: "credits", amount: 2}]) { id } }`, { a: allocation });
    await admin(`mutation($a: ID!) { release(allocationId: $a) { id } }`, { a: allocation });
    const { token } = (await admin(`mutation($id: ID!) { acquireLock(contextId: $id, name: "w", holder: "t", leaseMs: 60000) { token } }`, { id })).acquireLock;
    await admin(`mutation($id: ID!, $t: Int!) { releaseLock(contextId: $id, name: "w", token: $t) { token } }`, { id, t: token });
    const pending = held;
    held = null;
    for (const relay of pending) relay();
    await watcher.until(() => changes().length === 8, "the changes made while it was cut off");
    await appendTo(id, 4);
    await exited(watcher);

    expect(changes().map((c) => c.seq)).toEqual(Array.from({ length: 9 }, (_, i) => first + 1 + i));
    expect(changes().map((c) => c.kind)).toEqual([
      "UPDATED",
      "UPDATED",
      "UPDATED",
      "ALLOCATED",
      "USAGE_REPORTED",
      "RELEASED",
      "LOCK_ACQUIRED",
      "LOCK_RELEASED",
      "UPDATED",
    ]);
    expect(watcher.lines.find((line) => line.event === "reconnect")).toMatchObject({ after: first + 2 });
  } finally {
    await proxy.close();
  }
});

test("watch from a cursor past the feed's end re-reads the context on the resync and continues from its seq", async () => {
  const id = "py-resync";
  await createContext(id, { blackboard: { log: [] } });
  const { seq } = (await appendTo(id, 1)).patchContext as { seq: number };
  const watcher = spawnAgent(["watch", "--after", String(seq + 1000), "--count", "1"], { SWARM_ID: id, SWARM_URL: server.url });
  await watcher.until((lines) => lines.some((line) => line.event === "resync"), "the resync");
  expect(watcher.lines.find((line) => line.event === "resync")).toMatchObject({ contextId: id, seq, version: 2, current: 2 });
  await appendTo(id, 2);
  await exited(watcher);
  expect(watcher.lines.filter((line) => line.event === "change").map((c) => [c.seq, c.kind])).toEqual([[seq + 1, "UPDATED"]]);
});
