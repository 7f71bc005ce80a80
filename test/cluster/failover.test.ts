// Proves that the server carries on through a Redis Cluster failover under write load (a master SIGKILLed, its replica promoted, the old node back as a replica): patches and allocate+release pairs on swarms of every master, retried with their opIds while UNAVAILABLE, all complete, with SWARM_REDIS_WAIT_REPLICAS=1 no acknowledged write is lost, without it the test reports how many were, and the ledger stays sound either way.
import { describe, expect, test } from "vitest";
import { AllocateDocument, CreateContextDocument, GetContextDocument, GetLedgerDocument, PatchContextDocument, ReleaseDocument } from "../gql/graphql.js";
import { errorCode, useTestServer, type GraphQLResponse, type ServerFixture } from "../helpers/app.js";
import { Backoff } from "../helpers/backoff.js";
import { useRedisCluster } from "../helpers/cluster-nodes.js";
import { Keys } from "../../src/redis/keys.js";
import { ledgerViolations } from "../../support/ledger-invariant.js";

/** Swarms written with patches, two on each master (asserted), the first on the master that is killed. */
const DOCUMENTS = ["f-1", "f-5", "f-0", "f-4", "f-2", "f-3"];
/** Swarms written with allocate + release pairs, one on each master. */
const LEDGERS = ["f-9", "f-8", "f-6"];
/** Acknowledged operations every writer makes before the kill, and again after the failover. */
const ROUND = 10;
/** Acknowledged operations every writer on the other masters makes while the killed master's replica lags. */
const LAG = 3;

/** What the writers acknowledged, and what a ledger writer found lost on the way. */
interface Load {
  /** Per document swarm, the last n whose patch (adding n to /acks) was acknowledged: all of 1..n were. */
  readonly patched: Map<string, number>;
  /** Per ledger swarm, acknowledged releases, each charging 1 credit. */
  readonly released: Map<string, number>;
  /** Per ledger swarm, acknowledged allocations whose release found them gone. */
  readonly allocationsLost: Map<string, number>;
}

/**
 * A cluster of three masters with a replica each, a server on it with `waitReplicas`, and write
 * load that runs through the kill of the master of DOCUMENTS[0] until its old node is a replica
 * again; then every writer stops and the test reads what is left.
 */
function failover(waitReplicas: number): { run: () => Promise<Load>; server: ServerFixture } {
  const own = useRedisCluster(3, 1);
  const server = useTestServer(() => ({ redisClusterNodes: own.cluster.seeds, redisWaitReplicas: waitReplicas }));

  const run = async (): Promise<Load> => {
    const keys = new Keys(server.config.keyPrefix);
    const slotOf = (id: string) => own.nodes.call<number>(own.cluster.nodes[0]!, "CLUSTER", "KEYSLOT", keys.context(id).meta);
    const masters = new Map<string, number>();
    for (const id of DOCUMENTS) {
      await server.data(CreateContextDocument, { id, document: { acks: [] } });
      masters.set(id, (await own.cluster.masterOf(await slotOf(id))).port);
    }
    for (const id of LEDGERS) {
      await server.data(CreateContextDocument, { id, document: { resources: { limits: { credits: 1_000_000_000 } } } });
      masters.set(id, (await own.cluster.masterOf(await slotOf(id))).port);
    }
    expect(new Set(DOCUMENTS.map((id) => masters.get(id))).size).toBe(3);
    expect(new Set(LEDGERS.map((id) => masters.get(id))).size).toBe(3);

    const load: Load = { patched: new Map(), released: new Map(), allocationsLost: new Map() };
    const done = (id: string) => load.patched.get(id) ?? load.released.get(id) ?? 0;
    let stopping = false;
    let failed: Error | undefined;
    const waiters = new Set<() => void>();
    const progressed = () => waiters.forEach((check) => check());
    /** Resolves once every writer (of `ids`) has acknowledged `more` operations past where it is now (a failed writer rejects it). */
    const advanced = (more: number, ids = [...DOCUMENTS, ...LEDGERS]) => {
      const from = new Map(ids.map((id) => [id, done(id)]));
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (failed) reject(failed);
          else if ([...from].every(([id, n]) => done(id) >= n + more)) resolve();
          else return;
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    };
    /** `send`'s response once it is not UNAVAILABLE: retried with the same opId while the cluster fails over. */
    const acknowledged = async <T>(what: string, send: () => Promise<GraphQLResponse<T>>): Promise<GraphQLResponse<T>> => {
      const backoff = new Backoff(20, 250);
      for (let attempt = 1; ; attempt++) {
        const res = await send();
        if (errorCode(res) !== "UNAVAILABLE") return res;
        // About 50 s of retries: far past a failover's few seconds.
        if (attempt === 200) throw new Error(`${what} still UNAVAILABLE after ${attempt} attempts: ${res.errors![0]!.message}`);
        await backoff.wait();
      }
    };
    const writer = (step: (n: number) => Promise<void>) =>
      (async () => {
        for (let n = 1; !stopping; n++) {
          await step(n);
          progressed();
        }
      })().catch((err: Error) => {
        failed ??= err;
        progressed();
      });
    const patches = (id: string) =>
      writer(async (n) => {
        const res = await acknowledged(`patch ${id} #${n}`, () =>
          server.request(PatchContextDocument, { id, patch: [{ op: "add" as never, path: "/acks/-", value: n }], opId: `${id}-${n}` }),
        );
        if (res.errors) throw new Error(`patch ${id} #${n}: ${JSON.stringify(res.errors)}`);
        load.patched.set(id, n);
      });
    const pairs = (id: string) =>
      writer(async (n) => {
        const allocated = await acknowledged(`allocate ${id} #${n}`, () =>
          server.request(AllocateDocument, { contextId: id, request: [{ kind: "credits", amount: 10 }], mode: "EXACT" as never, opId: `${id}-a${n}` }),
        );
        if (allocated.errors || !allocated.data) throw new Error(`allocate ${id} #${n}: ${JSON.stringify(allocated.errors)}`);
        const released = await acknowledged(`release ${id} #${n}`, () =>
          server.request(ReleaseDocument, { allocationId: allocated.data!.allocate.id, usage: [{ kind: "credits", amount: 1 }], opId: `${id}-r${n}` }),
        );
        if (errorCode(released) === "NOT_FOUND") {
          // The acknowledged allocation went with the old master.
          load.allocationsLost.set(id, (load.allocationsLost.get(id) ?? 0) + 1);
          return;
        }
        if (released.errors) throw new Error(`release ${id} #${n}: ${JSON.stringify(released.errors)}`);
        load.released.set(id, (load.released.get(id) ?? 0) + 1);
      });
    const writers = [...DOCUMENTS.map(patches), ...LEDGERS.map(pairs)];

    try {
      await advanced(ROUND);
      const slot = await slotOf(DOCUMENTS[0]!);
      const victim = await own.cluster.masterOf(slot);
      const [, , [[, replicaPort]]] = await own.nodes.call<[string, number, [[string, string, string]]]>(victim, "ROLE");
      const replica = own.cluster.nodes.find((node) => String(node.port) === replicaPort)!;
      // Replication lag at the worst moment, which a loaded or distant replica has and one on
      // loopback hardly ever: the replica stops reading and its link is cut, so that what the
      // victim applies from now on reaches no replica before the victim dies. The pause stays
      // well within the node timeout, so that the replica is still fit to be promoted.
      replica.pause();
      try {
        await own.nodes.call(victim, "CLIENT", "KILL", "TYPE", "replica");
        await advanced(LAG, [...DOCUMENTS, ...LEDGERS].filter((id) => masters.get(id) !== victim.port));
        await victim.kill();
      } finally {
        replica.resume();
      }
      const backoff = new Backoff(50, 250);
      while ((await own.cluster.masterOf(slot)) === victim) await backoff.wait();
      // Back as a replica of the promoted one (its node config says so), and synced: with WAIT=1
      // the promoted master's writes wait for it.
      await victim.restart();
      await own.cluster.settled();
      await advanced(ROUND);
    } finally {
      stopping = true;
      await Promise.all(writers);
    }
    if (failed) throw failed;
    return load;
  };
  return { run, server };
}

/** Per document swarm, the acknowledged patches missing from its document; checks that what is there was acknowledged, once, in order. */
async function lostPatches(server: ServerFixture, load: Load): Promise<Map<string, number>> {
  const lost = new Map<string, number>();
  for (const id of DOCUMENTS) {
    const { context } = await server.data(GetContextDocument, { id });
    const acks = (context!.document as { acks: number[] }).acks;
    const acked = load.patched.get(id)!;
    expect(acks, id).toEqual([...acks].sort((a, b) => a - b));
    expect(new Set(acks).size, id).toBe(acks.length);
    expect(acks.every((n) => n >= 1 && n <= acked), id).toBe(true);
    lost.set(id, acked - acks.length);
  }
  return lost;
}

/** Per ledger swarm, acknowledged releases whose charge is gone; checks the ledger's invariant and that nothing was charged twice. */
async function lostReleases(server: ServerFixture, load: Load): Promise<Map<string, number>> {
  const lost = new Map<string, number>();
  for (const id of LEDGERS) {
    expect(await ledgerViolations(server.redis, server.config.keyPrefix, id), id).toEqual([]);
    const { context } = await server.data(GetLedgerDocument, { id, first: 1 });
    const consumed = context!.budget.consumed.find((a) => a.kind === "credits")?.amount ?? 0;
    const released = load.released.get(id) ?? 0;
    expect(consumed, id).toBeLessThanOrEqual(released);
    lost.set(id, released - consumed);
  }
  return lost;
}

const sum = (counts: Map<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0);

describe("with SWARM_REDIS_WAIT_REPLICAS=1", () => {
  const { run, server } = failover(1);

  test("no acknowledged write is lost", async () => {
    const load = await run();
    expect(Object.fromEntries(await lostPatches(server, load))).toEqual(Object.fromEntries(DOCUMENTS.map((id) => [id, 0])));
    expect(Object.fromEntries(await lostReleases(server, load))).toEqual(Object.fromEntries(LEDGERS.map((id) => [id, 0])));
    expect(sum(load.allocationsLost)).toBe(0);
  });
});

describe("without it (SWARM_REDIS_WAIT_REPLICAS=0)", () => {
  const { run, server } = failover(0);

  test("the server carries on; the test reports the acknowledged writes the failover lost", async () => {
    const load = await run();
    const patches = await lostPatches(server, load);
    const releases = await lostReleases(server, load);
    // A pair is two writes; an allocation found lost was acknowledged, its release was not.
    const acknowledged = sum(load.patched) + 2 * sum(load.released) + sum(load.allocationsLost);
    console.log(
      `failover without WAIT: lost ${sum(patches)} acknowledged patches, ${sum(releases)} acknowledged releases and ${sum(load.allocationsLost)} acknowledged allocations, of ${acknowledged} acknowledged writes (${JSON.stringify({ patches: Object.fromEntries(patches), releases: Object.fromEntries(releases), allocations: Object.fromEntries(load.allocationsLost) })})`,
    );
  });
});
