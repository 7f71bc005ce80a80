// Proves the client's watches: watch() delivers every change once and in order across a server instance killed with SIGKILL (resuming on the next url) and across a killed Redis pub/sub connection, yields { resync } for a cursor past retention, and loses nothing to a consumer that stops reading; watchSlice resumes without repeating a value.
import { expect, test } from "vitest";
import WebSocket from "ws";
import type { WatchItem } from "swarm-context/client";
import { useRedisServer, useTestServer } from "../helpers/app.js";
import { useClients } from "../helpers/clients.js";
import { collect } from "../helpers/collect.js";
import { range } from "../helpers/feed-client.js";
import { spawnServer } from "../helpers/server-process.js";

const redis = useRedisServer();
const writer = useTestServer(() => ({ redisUrl: redis().url }));
const small = useTestServer({ feedRetention: 5 });
const client = useClients({ retry: { baseDelayMs: 20, maxDelayMs: 200 } });

const seqs = (items: readonly WatchItem[]) => items.map((item) => ("resync" in item ? -1 : item.seq));

test("watch and watchSlice resume on the next url when their server instance is killed with SIGKILL: every change once, in order", async () => {
  const env = { ...process.env, REDIS_URL: redis().url };
  const args = ["--port", "0", "--key-prefix", writer.config.keyPrefix];
  const doomed = spawnServer(args, env);
  const survivor = spawnServer(args, env);
  try {
    const urls = [await doomed.url, await survivor.url];
    const id = "client-watch-kill";
    const writes = client(writer.url).swarm(id);
    await writes.create({ n: -1, other: 0 });
    const watcher = client(urls).swarm(id);
    const changes = collect(watcher.watch());
    const slices = collect(watcher.watchSlice(["/n"]));
    await slices.until((s) => s.length === 1, "the first slice");
    for (let n = 0; n < 40; n++) await writes.merge(n % 4 === 3 ? { other: n } : { n });
    await changes.until((items) => items.length === 40, "40 changes");
    doomed.child.kill("SIGKILL");
    await doomed.exited;
    for (let n = 40; n < 80; n++) await writes.merge(n % 4 === 3 ? { other: n } : { n });
    await changes.until((items) => items.length === 80, "80 changes");
    await slices.until((s) => s.at(-1)?.slice["/n"] === 78, "the last /n");
    expect(seqs(changes.items)).toEqual(range(2, 81));
    const sliceSeqs = slices.items.map((s) => s.seq);
    expect(sliceSeqs).toEqual([...new Set(sliceSeqs)].sort((x, y) => x - y));
    expect(slices.items.every((s, i) => i === 0 || s.slice["/n"] !== slices.items[i - 1]!.slice["/n"])).toBe(true);
  } finally {
    doomed.child.kill("SIGKILL");
    survivor.child.kill("SIGTERM");
    await Promise.all([doomed.exited, survivor.exited]);
  }
});

test("watch across a killed Redis pub/sub connection: every change once, in order", async () => {
  const id = "client-watch-pubsub";
  const writes = client(writer.url).swarm(id);
  await writes.create({});
  const changes = collect(client(writer.url).swarm(id).watch({ paths: ["/n"] }));
  for (let n = 0; n < 20; n++) await writes.merge({ n });
  await changes.until((items) => items.length === 20, "20 changes");
  expect(Number(await writer.redis.call("CLIENT", "KILL", "TYPE", "pubsub"))).toBeGreaterThan(0);
  for (let n = 20; n < 40; n++) await writes.merge({ n });
  await changes.until((items) => items.length === 40, "40 changes");
  expect(seqs(changes.items)).toEqual(range(2, 41));
});

test("a cursor older than retention yields { resync } first, then every later change", async () => {
  const id = "client-watch-resync";
  const writes = client(small.url).swarm(id);
  await writes.create({});
  for (let n = 0; n < 20; n++) await writes.merge({ n });
  const changes = collect(client(small.url).swarm(id).watch({ after: 2 }));
  await changes.until((items) => items.length >= 1, "the first item");
  const [first] = changes.items;
  expect(first).toEqual({ resync: { contextId: id, seq: 21, version: 21 } });
  await writes.merge({ n: "after" });
  await changes.until((items) => items.length === 2, "the next change");
  expect(changes.items[1]).toMatchObject({ seq: 22, kind: "UPDATED", paths: ["/n"] });
});

test("a consumer that stops reading loses nothing: the watch stops its subscription and resumes from its cursor", async () => {
  const id = "client-watch-slow";
  const writes = client(writer.url).swarm(id);
  await writes.create({});
  let subscribes = 0;
  class CountingWebSocket extends WebSocket {
    override send(data: string) {
      if ((JSON.parse(data) as { type: string }).type === "subscribe") subscribes++;
      super.send(data);
    }
  }
  const watcher = client(writer.url, { webSocketImpl: CountingWebSocket });
  const watch = watcher.swarm(id).watch({ batch: { maxSize: 1 }, maxBuffered: 50 });
  const next = watch.next(); // the watch starts at seq 1; after the first item nobody reads while 300 changes are made
  for (let n = 0; n < 300; n++) await writes.merge({ n });
  const first = await next;
  const rest: WatchItem[] = [];
  for await (const item of watch) {
    rest.push(item);
    if (rest.length === 299) break;
  }
  expect(seqs([first.value as WatchItem, ...rest])).toEqual(range(2, 301));
  // 300 changes do not fit a buffer of 50: it stopped and resubscribed (how often depends on the replays' batches).
  expect(subscribes).toBeGreaterThanOrEqual(2);
});
