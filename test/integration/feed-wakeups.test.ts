// Proves that a caught-up subscriber is served from the wake-up itself, with no read of the stream, that a change too large to travel in its wake-up is announced by a plain one and read from the stream, that a change whose wake-up never arrived is still delivered, in order, from the stream, and that a change reaches many WebSocket subscriptions (several on one connection) as text frames.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { parse } from "graphql";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import WebSocket from "ws";
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

test("a change reaches every WebSocket subscription, several on one connection, each as a text frame naming its subscription", async () => {
  const id = "frames";
  await create(id);
  const query = "subscription($id: ID!) { contextChanges(contextIds: [$id]) { changes { contextId seq patch } } }";
  /** Per connection, every message received after the acknowledgement: its text and whether it came as a binary frame. */
  const received: { text: string; binary: boolean }[][] = [];
  const listeners = new Set<() => void>();
  /** Resolves once `check` holds, checked on every message. */
  const until = (check: () => boolean) =>
    new Promise<void>((resolve) => {
      const test = () => check() && (listeners.delete(test), resolve());
      listeners.add(test);
      test();
    });
  const open = (subscriptions: number) =>
    new Promise<WebSocket>((resolve, reject) => {
      const messages: { text: string; binary: boolean }[] = [];
      received.push(messages);
      const ws = new WebSocket(server.url.replace(/^http/, "ws"), "graphql-transport-ws");
      ws.on("error", reject);
      ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init" })));
      ws.on("message", (data, binary) => {
        const text = String(data);
        if (JSON.parse(text).type === "connection_ack") {
          for (let k = 1; k <= subscriptions; k++) ws.send(JSON.stringify({ id: String(k), type: "subscribe", payload: { query, variables: { id } } }));
          resolve(ws);
        } else {
          messages.push({ text, binary });
          for (const listener of [...listeners]) listener();
        }
      });
    });
  const sockets = [await open(3), await open(1)];
  const nexts = () => received.map((messages) => messages.filter((m) => JSON.parse(m.text).type === "next"));
  // Registered some time after they are sent: writes go out until every subscription has one.
  let seq = 0;
  for (let n = 0; nexts()[0]!.length < 3 || nexts()[1]!.length < 1; n++) {
    if (n > 40) throw new Error(`subscriptions not live: ${JSON.stringify(received)}`);
    const before = nexts().map((m) => m.length);
    seq = (await patch(id, "/n", n)).seq;
    await until(() => nexts().some((m, i) => m.length > before[i]!));
  }
  const last = (await patch(id, "/n", "last")).seq;
  const lastOf = () => nexts().map((messages) => messages.filter((m) => JSON.parse(m.text).payload.data.contextChanges.changes.some((c: { seq: number }) => c.seq === last)));
  await until(() => lastOf()[0]!.length === 3 && lastOf()[1]!.length === 1);
  expect(seq).toBeLessThan(last);
  const [many, one] = lastOf();
  for (const m of [...many!, ...one!]) expect(m.binary).toBe(false);
  expect(many!.map((m) => JSON.parse(m.text).id).sort()).toEqual(["1", "2", "3"]);
  // Subscription "1" on either connection gets the same bytes.
  expect(many!.find((m) => JSON.parse(m.text).id === "1")!.text).toBe(one![0]!.text);
  expect(JSON.parse(one![0]!.text).payload.data.contextChanges.changes).toEqual([{ contextId: id, seq: last, patch: [{ op: "replace", path: "/n", value: "last" }] }]);
  for (const ws of sockets) ws.close();
});
