// Proves that on a Redis Cluster a kill -9 of one master (AOF, fsync always) under write load loses no acknowledged write and applies none twice, that what is refused meanwhile is UNAVAILABLE (retryable), that swarms on the other masters are served while it is down, and that its swarms are served again, their ledger sound, once it is back.
import { Cluster } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { AllocateDocument, CreateContextDocument, GetContextDocument, PatchContextHeadDocument, ReleaseDocument } from "../gql/graphql.js";
import { startTestServer, type GraphQLResponse, type TestServer } from "../helpers/app.js";
import { Backoff } from "../helpers/backoff.js";
import { ledgerViolations } from "../../support/ledger-invariant.js";
import { startRedisCluster, type RedisCluster } from "../../support/redis-cluster.js";

let cluster: RedisCluster;
let app: TestServer;
let admin: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster(3, 0, ["--appendonly", "yes", "--appendfsync", "always"]);
  app = await startTestServer({ redisClusterNodes: cluster.seeds, stateCheckMs: 100 });
  admin = new Cluster(cluster.seeds.split(","));
  admin.on("error", () => undefined); // one of its nodes is killed
});
afterAll(async () => {
  admin?.disconnect();
  await app?.close();
  await cluster?.stop();
});

/** The master that holds swarm `id` now. */
async function masterOfSwarm(id: string) {
  const slot = (await admin.cluster("KEYSLOT", `{ctx:${id}}`)) as number;
  return cluster.masterOf(slot);
}

const add = (path: string, value: unknown) => [{ op: "add" as const, path, value }];
const credits = (amount: number) => [{ kind: "credits", amount }];

test("kill -9 of one master under write load: its swarms lose no acknowledged write and apply none twice; the other masters' swarms are served meanwhile", async () => {
  // Two swarms on different masters: the victim's master is killed, the bystander's is not.
  const ids = Array.from({ length: 12 }, (_, i) => `m${i}`);
  const masters = await Promise.all(ids.map(masterOfSwarm));
  const victim = ids[0]!;
  const bystander = ids.find((_, i) => masters[i] !== masters[0])!;
  expect(bystander, "a swarm on another master").toBeDefined();
  for (const id of [victim, bystander]) await app.data(CreateContextDocument, { id, document: { acks: {}, resources: { limits: { credits: 1_000_000 } } } });

  const acked = new Map<string, string[]>([[victim, []], [bystander, []]]);
  let down = false;
  let bystanderAcksWhileDown = 0;
  let stop = false;
  /** Refusals seen while retrying, by code. */
  const refusals = new Map<string, number>();
  /** Sends until the server answers with data, the same opId every time. */
  const untilApplied = async <T>(send: () => Promise<GraphQLResponse<T>>): Promise<T> => {
    const backoff = new Backoff(1, 50);
    for (;;) {
      const res = await send().catch(() => null);
      if (res?.data && !res.errors) return res.data;
      const code = String(res?.errors?.[0]?.extensions?.code ?? "network");
      refusals.set(code, (refusals.get(code) ?? 0) + 1);
      if (stop) throw new Error("stopped before it was applied");
      await backoff.wait();
    }
  };
  const writer = async (id: string, w: number) => {
    for (let n = 0; !stop; n++) {
      const opId = `${id}-w${w}-${n}`;
      await untilApplied(() => app.request(PatchContextHeadDocument, { id, patch: add(`/acks/${opId}`, true), opId }));
      acked.get(id)!.push(opId);
      if (id === bystander && down) bystanderAcksWhileDown++;
      if (n % 4 === 3) {
        const { allocate } = await untilApplied(() => app.request(AllocateDocument, { contextId: id, request: credits(10), mode: "EXACT", opId: `a-${opId}` }));
        await untilApplied(() => app.request(ReleaseDocument, { allocationId: allocate.id, usage: credits(3), opId: `r-${opId}` }));
      }
    }
  };
  const until = async (check: () => boolean) => {
    const backoff = new Backoff(5, 50);
    while (!check()) await backoff.wait();
  };
  const writers = Promise.all([victim, bystander].flatMap((id) => [0, 1, 2].map((w) => writer(id, w))));
  await until(() => acked.get(victim)!.length >= 60);

  const node = masters[0]!;
  const ackedBeforeKill = [...acked.get(victim)!];
  down = true;
  await node.kill();
  // The bystander's master is untouched: its swarm keeps being written while the victim's is down.
  await until(() => bystanderAcksWhileDown >= 30);
  await node.restart();
  down = false;
  await cluster.settled();
  const victimAcksAfter = acked.get(victim)!.length;
  await until(() => acked.get(victim)!.length >= victimAcksAfter + 60);
  stop = true;
  await writers.catch(() => undefined);

  // A node that is down, or a slot map not yet caught up with it (MOVED), is UNAVAILABLE: retry.
  expect([...refusals.keys()].filter((code) => code !== "UNAVAILABLE")).toEqual([]);
  for (const id of [victim, bystander]) {
    const context = (await app.data(GetContextDocument, { id })).context!;
    const keys = Object.keys((context.document as { acks: Record<string, boolean> }).acks).sort();
    if (id === victim) expect(ackedBeforeKill.filter((opId) => !keys.includes(opId)), "acknowledged before the kill, then lost").toEqual([]);
    expect(keys).toEqual([...acked.get(id)!].sort());
    // One version per acknowledged patch (none applied twice), plus the creation.
    expect(context.version).toBe(acked.get(id)!.length + 1);
    expect(await ledgerViolations(admin, app.config.keyPrefix, id)).toEqual([]);
  }
});
