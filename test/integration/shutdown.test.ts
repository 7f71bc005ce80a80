// Proves a graceful shutdown of a server process (SIGTERM) ends its feed subscribers, over both transports, with UNAVAILABLE and the cursors to resume from: resumed on another instance, each sees every change exactly once, and the process exits 0.
import { expect, test } from "vitest";
import { ContextChangesDocument, CreateContextDocument, PatchContextHeadDocument } from "../gql/graphql.js";
import { useTestServer } from "../helpers/app.js";
import { range, resumeAfterShutdown, seqsOf, subscribe, TRANSPORTS } from "../helpers/feed-client.js";
import { spawnServer } from "../helpers/server-process.js";

const survivor = useTestServer();

/** A server process on the test Redis with the survivor's key prefix. */
const startProcess = () => spawnServer(["--port", "0", "--key-prefix", survivor.config.keyPrefix], { ...process.env, REDIS_URL: survivor.config.redisUrl });

test("SIGTERM ends feed subscribers with UNAVAILABLE and cursors; resumed elsewhere they miss nothing and see nothing twice", async () => {
  const id = "shutdown";
  // n starts below every value written: a write of the value already there writes nothing.
  await survivor.data(CreateContextDocument, { id, document: { n: -1 } });
  const patch = async (n: number) => (await survivor.data(PatchContextHeadDocument, { id, patch: [{ op: "replace" as never, path: "/n", value: n }] })).patchContext.seq;
  const doomed = startProcess();
  const url = await doomed.url;
  const first = TRANSPORTS.map((transport) => subscribe(transport, url, ContextChangesDocument, { contextIds: [id], after: [{ contextId: id, seq: 1 }] }));
  let last = await patch(0);
  for (const client of first) await client.until((c) => seqsOf(c).includes(last), "a first change");

  const terminatedAt = performance.now();
  let exitMs = 0;
  const exit = doomed.exited.then((code) => ((exitMs = performance.now() - terminatedAt), code));
  for (let n = 1; n <= 60; n++) {
    last = await patch(n);
    if (n === 20) doomed.child.kill("SIGTERM");
  }
  expect(await exit).toBe(0);
  expect(exitMs).toBeLessThan(10_000);

  for (const [i, client] of first.entries()) {
    expect(await resumeAfterShutdown(client, TRANSPORTS[i]!, survivor.url, id, last), TRANSPORTS[i]).toEqual(range(2, last));
  }
});
