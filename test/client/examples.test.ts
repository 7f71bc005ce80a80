// Proves the examples run as documented against a real server: three agents (examples/agent.mjs) record every step, leave every allocation released with its usage charged and the lock free, while the watcher (examples/watcher.mjs) prints every change once, in order.
import type { ChildProcess } from "node:child_process";
import { afterAll, expect, test } from "vitest";
import { CreateContextDocument, GetLedgerDocument, GetContextDocument } from "../gql/graphql.js";
import { useTestServer } from "../helpers/app.js";
import { range } from "../helpers/feed-client.js";
import { spawnJsonLines } from "../helpers/json-lines-process.js";

const server = useTestServer();

// Killed after the test whatever happened in it: the watcher runs until told to stop.
const children: ChildProcess[] = [];
afterAll(() => children.forEach((child) => child.kill("SIGKILL")));

function run(script: string, env: Record<string, string>) {
  const spawned = spawnJsonLines(process.execPath, [script], { ...process.env, ...env });
  children.push(spawned.child);
  return spawned;
}

test("three agents and a watcher, as in examples/", async () => {
  const id = "examples-swarm";
  await server.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 1000 } }, policy: { stepCredits: 20 }, blackboard: {} } });
  const env = { SWARM_URL: server.url, SWARM_ID: id };
  const watcher = run("examples/watcher.mjs", { ...env, SWARM_AFTER: "1" });
  const agents = ["agent-a", "agent-b", "agent-c"].map((agent) => run("examples/agent.mjs", { ...env, SWARM_AGENT: agent, SWARM_STEPS: "4" }));
  for (const agent of agents) expect(await agent.exited, agent.stderr()).toBe(0);

  const steps = agents.flatMap((agent) => agent.lines);
  expect(steps).toHaveLength(12);
  expect(steps.every((s) => s.event === "step" && (s.granted as { credits: number }).credits === 20 && s.spent === 3)).toBe(true);
  const { context } = await server.data(GetLedgerDocument, { id });
  expect(context!.budget).toMatchObject({ granted: [{ kind: "credits", amount: 0 }], consumed: [{ kind: "credits", amount: 36 }] });
  expect(context!.locks).toEqual([]);
  const board = (await server.data(GetContextDocument, { id })).context!;
  const recorded = (board.document as { blackboard: { steps: { agent: string; step: number; token: number }[] } }).blackboard.steps;
  expect(recorded.map((r) => `${r.agent}:${r.step}`).sort()).toEqual(steps.map((s) => `${s.agent}:${s.step}`).sort());
  expect(recorded.map((r) => r.token)).toEqual([...recorded.map((r) => r.token)].sort((x, y) => x - y));

  const last = board.seq;
  await watcher.until((lines) => lines.at(-1)?.seq === last, "the last change");
  watcher.child.kill("SIGTERM");
  expect(watcher.lines.map((l) => l.seq)).toEqual(range(2, last));
  expect(new Set(watcher.lines.map((l) => l.kind))).toEqual(new Set(["ALLOCATED", "LOCK_ACQUIRED", "UPDATED", "LOCK_RELEASED", "USAGE_REPORTED", "RELEASED"]));
});
