// Proves that a caught-up subscriber is served from the wake-up itself, with no read of the stream, that a change too large to travel in its wake-up is announced by a plain one and read from the stream, and that a change whose wake-up never arrived is still delivered, in order, from the stream.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { parse } from "graphql";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { CreateContextDocument, PatchContextHeadDocument } from "../gql/graphql.js";
import { useTestServer } from "../helpers/app.js";
import { range, subscribe, TRANSPORTS, type FeedClient } from "../helpers/feed-client.js";
import { watchCommands, type CommandWatch } from "../helpers/monitor.js";
import { Keys } from "../../src/redis/keys.js";
import { ContextStore } from "../../src/store/contexts.js";
import { WAKE_UP_ENTRY_BYTES } from "../../src/store/feed-reader.js";

interface Changes {
  contextChanges: { changes: { contextId: string; seq: number; patch: unknown[] }[] };
}
type Client = FeedClient<Changes>;

/** The changes with their patches, which show that a change arrived whole. */
const CHANGES: TypedDocumentNode<Changes, { contextIds: string[] }> = parse(
  "subscription($contextIds: [ID!]) { contextChanges(contextIds: $contextIds) { changes { contextId seq patch } } }",
);
const seqsOf = (client: Client): number[] => client.values.flatMap((v) => v.contextChanges.changes.map((c) => c.seq));

const server = useTestServer();

/** Keys whose wake-ups go to a channel nobody listens to: a write through them is a change whose wake-up was lost. */
class LostWakeUpKeys extends Keys {
  override get changesChannel(): string {
    return `${this.prefix}:nobody-listens`;
  }
}

interface Seen {
  /** Start seq of every stream read (XRANGE/XREVRANGE, inside the feed script or not) of the watched feed. */
  readonly reads: number[];
  /** Every wake-up published for the watched context: its message. */
  readonly wakeUps: string[];
}

let watch: CommandWatch | undefined;
let seen: Seen = { reads: [], wakeUps: [] };
/** The feed key and the context id whose commands `seen` collects. */
let watched = { feed: "", id: "" };

beforeAll(async () => {
  watch = await watchCommands(server.config.redisUrl, (args) => {
    const name = args[0]?.toLowerCase();
    if ((name === "xrange" || name === "xrevrange") && args[1] === watched.feed) {
      const start = args[2]!;
      seen.reads.push(start === "-" || start === "+" ? 0 : Number(/^\(?(\d+)/.exec(start)![1]));
    }
    if (name === "publish" && args[1] === `${server.config.keyPrefix}:changes` && args[2]!.startsWith(`${watched.id} `)) seen.wakeUps.push(args[2]!);
  });
});
afterAll(() => watch?.stop());

function watchContext(id: string): void {
  watched = { id, feed: new Keys(server.config.keyPrefix).context(id).feed };
  seen = { reads: [], wakeUps: [] };
}

async function create(id: string) {
  return (await server.data(CreateContextDocument, { id, document: { n: -1, blob: "" } })).createContext;
}

async function patch(id: string, path: string, value: unknown) {
  return (await server.data(PatchContextHeadDocument, { id, patch: [{ op: "replace" as never, path, value }] })).patchContext;
}

/** A live subscription to `id` from its current seq (no replay), proven live by a change it received. */
async function liveSubscriber(transport: (typeof TRANSPORTS)[number], id: string): Promise<{ client: Client; seq: number }> {
  const client = subscribe(transport, server.url, CHANGES, { contextIds: [id] });
  // Registered some time after it is sent: writes go out until one arrives.
  for (let n = 0; ; n++) {
    const { seq } = await patch(id, "/n", n);
    try {
      await client.until((c) => seqsOf(c).includes(seq), `seq ${seq}`, 500);
      return { client, seq };
    } catch (err) {
      if (n > 40) throw err;
    }
  }
}

describe.each(TRANSPORTS)("over %s", (transport) => {
  test("a caught-up subscriber gets every change from its wake-up: the stream is not read", async () => {
    const id = `caught-up-${transport}`;
    await create(id);
    watchContext(id);
    const { client, seq: live } = await liveSubscriber(transport, id);
    // One more, so that a read the start-up may still run is over (it starts at or before `live`).
    const next = (await patch(id, "/n", "next")).seq;
    await client.until((c) => seqsOf(c).includes(next), `seq ${next}`);
    let last = next;
    for (let i = 0; i < 10; i++) last = (await patch(id, "/n", `live ${i}`)).seq;
    await client.until((c) => seqsOf(c).includes(last), `seq ${last}`);
    await watch!.settle();
    expect(seqsOf(client).filter((s) => s > live)).toEqual(range(next, last));
    // Reading for one of these changes would start at the seq before it, `next` or later.
    expect(seen.reads.filter((start) => start >= next)).toEqual([]);
    // Their wake-ups carried them: each names its context and seq, then the entry.
    const carried = seen.wakeUps.filter((m) => Number(m.split(" ")[1]) > next);
    expect(carried).toHaveLength(10);
    for (const message of carried) expect(message.split(" ").length).toBeGreaterThan(2);
    client.close();
  });

  test("a change too large for its wake-up is announced plainly and read from the stream, in order with the rest", async () => {
    const id = `oversized-${transport}`;
    await create(id);
    watchContext(id);
    const { client } = await liveSubscriber(transport, id);
    // Its patch alone holds more than the bound.
    const big = "x".repeat(WAKE_UP_ENTRY_BYTES);
    const before = (await patch(id, "/n", "small")).seq;
    const large = (await patch(id, "/blob", big)).seq;
    const after = (await patch(id, "/n", "small again")).seq;
    await client.until((c) => seqsOf(c).includes(after), `seq ${after}`);
    await watch!.settle();
    const changes = client.values.flatMap((v) => v.contextChanges.changes).filter((c) => c.seq >= before);
    expect(changes.map((c) => c.seq)).toEqual([before, large, after]);
    expect(changes[1]!.patch).toEqual([{ op: "replace", path: "/blob", value: big }]);
    expect(seen.wakeUps.find((m) => m.startsWith(`${id} ${large}`))).toBe(`${id} ${large}`);
    expect(seen.reads).toContain(large - 1);
    client.close();
  });

  test("a change whose wake-up was lost is read from the stream once the next wake-up shows the gap", async () => {
    const id = `lost-${transport}`;
    await create(id);
    const { client, seq: live } = await liveSubscriber(transport, id);
    const silent = new ContextStore(server.redis, new LostWakeUpKeys(server.config.keyPrefix), server.config);
    const lost = (await silent.patch(id, [{ op: "replace", path: "/n", value: "unannounced" }], { actor: "test" })).seq;
    const next = (await patch(id, "/n", "announced")).seq;
    expect(next).toBe(lost + 1);
    await client.until((c) => seqsOf(c).includes(next), `seq ${next}`);
    expect(seqsOf(client).filter((s) => s > live)).toEqual([lost, next]);
    const changes = client.values.flatMap((v) => v.contextChanges.changes);
    expect(changes.find((c) => c.seq === lost)!.patch).toEqual([{ op: "replace", path: "/n", value: "unannounced" }]);
    client.close();
  });
});
