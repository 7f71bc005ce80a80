// An agent loop with swarm-context's client, in plain JavaScript: each step reads the slice it
// needs, takes a budget, holds the blackboard lock while it writes with the fence, reports what it
// spent and releases the budget (even when the step throws).
//
//   SWARM_URL=http://127.0.0.1:4000/graphql SWARM_ID=swarm-1 SWARM_AGENT=agent-a node examples/agent.mjs
//
// Settings (environment): SWARM_URL (several, comma-separated, are tried in turn), SWARM_KEY (an
// agent key; none in open mode), SWARM_ID, SWARM_AGENT (this agent's name), SWARM_STEPS (default 3).
// The context needs a credits budget: {"resources": {"limits": {"credits": 1000}}}; its
// `policy.stepCredits` (default 10) says what a step may spend. Prints one JSON line per step.
import { connect } from "swarm-context/client";

const env = process.env;
const client = connect({ url: (env.SWARM_URL ?? "http://127.0.0.1:4000/graphql").split(","), key: env.SWARM_KEY, agent: env.SWARM_AGENT });
const swarm = client.swarm(env.SWARM_ID ?? "swarm-1");
const agent = env.SWARM_AGENT ?? "agent";

/** The step's work: here, deciding what it spent (an LLM call would go here). */
function work(step, credits) {
  return { spent: Math.min(credits, 3), note: `${agent} step ${step}` };
}

try {
  for (let step = 1; step <= Number(env.SWARM_STEPS ?? 3); step++) {
    // Read only what this step needs.
    const { slice } = await swarm.slice(["/policy/stepCredits", "/blackboard/steps"]);
    const credits = slice["/policy/stepCredits"] ?? 10;
    // Take the step's budget; the handle renews its lease until it is released.
    const allocation = await swarm.allocate({ credits }, { leaseMs: 30_000, purpose: `step ${step}` });
    try {
      const { spent, note } = work(step, credits);
      // Take turns on the blackboard; the fence refuses this write if the lease was lost meanwhile.
      const token = await swarm.withLock("blackboard", async (lock) => {
        if ((await swarm.value("/blackboard/steps")) === null) await lock.patch([{ op: "add", path: "/blackboard/steps", value: [] }]);
        await lock.patch([{ op: "add", path: "/blackboard/steps/-", value: { agent, step, note, token: lock.token, allocation: allocation.id } }]);
        return lock.token;
      });
      await allocation.report({ credits: spent });
      console.log(JSON.stringify({ event: "step", agent, step, allocation: allocation.id, granted: allocation.granted, spent, token }));
    } finally {
      await allocation.release();
    }
  }
} finally {
  await client.close();
}
