// Proves the assumptions the server makes about library internals (graphql-ws's message stringify-then-send, yoga's SSE use of a result's `stringify`, the @whatwg-node overrides staying on Node 20 versions), so that an upgrade breaking one fails here; docs/decisions/pins.md says why each pin is there.
import { readdirSync, readFileSync } from "node:fs";
import { buildSchema, type ExecutionResult } from "graphql";
import { GRAPHQL_TRANSPORT_WS_PROTOCOL, makeServer } from "graphql-ws";
import { createYoga } from "graphql-yoga";
import semver from "semver";
import { expect, test } from "vitest";
import { useSubscribe } from "../../src/server/shared-execution.js";

const ROOT = new URL("../../", import.meta.url);
const schema = buildSchema("type Query { n: Int }  type Subscription { ticks: Int }");

test("graphql-ws stringifies each next message with our replacer, with the result object itself as payload after id and type, and sends it before anything else runs (ws-transport.ts's one payload slot)", async () => {
  /** One result object for every subscriber and event, as a shared feed batch is. */
  const shared: ExecutionResult = { data: { ticks: 1 } };
  /** What the replacer saw last, until send() takes it; stale once a microtask ran in between. */
  let slot: { stale: boolean } | null = null;
  const payloads: unknown[] = [];
  const nextMessages: { data: string; slotFresh: boolean }[] = [];
  const server = makeServer({
    schema,
    jsonMessageReplacer(this: unknown, key, value) {
      if (key === "payload" && (this as { type?: unknown }).type === "next") {
        payloads.push(value);
        const filled = { stale: false };
        slot = filled;
        // Any await before send() runs this first: the slot would be stale when the message is sent.
        queueMicrotask(() => (filled.stale = true));
      }
      return value;
    },
    execute: () => shared,
    subscribe: async function* () {
      for (let event = 0; event < 3; event++) {
        await new Promise((resolve) => setImmediate(resolve));
        yield shared;
      }
    },
    onNext: (_ctx, _id, _payload, _args, result) => result,
  });
  let handle: ((data: string) => Promise<void>) | undefined;
  const closed = server.opened(
    {
      protocol: GRAPHQL_TRANSPORT_WS_PROTOCOL,
      send: async (data) => {
        if ((JSON.parse(data) as { type: string }).type !== "next") return;
        nextMessages.push({ data, slotFresh: slot !== null && !slot.stale });
        slot = null;
        // As ws-transport's send: resolves later, once the frame is written.
        await new Promise((resolve) => setImmediate(resolve));
      },
      close: () => {},
      onMessage: (cb) => (handle = cb),
    },
    {},
  );
  await handle!(JSON.stringify({ type: "connection_init" }));
  // Two subscriptions and a query on one connection, their messages interleaved.
  await Promise.all([
    handle!(JSON.stringify({ id: "a", type: "subscribe", payload: { query: "subscription { ticks }" } })),
    handle!(JSON.stringify({ id: "b", type: "subscribe", payload: { query: "subscription { ticks }" } })),
    handle!(JSON.stringify({ id: "q", type: "subscribe", payload: { query: "{ n }" } })),
  ]);
  await closed(1000, "");

  expect(nextMessages).toHaveLength(7);
  expect(payloads).toHaveLength(7);
  for (const payload of payloads) expect(payload).toBe(shared);
  expect(nextMessages.filter((m) => !m.slotFresh).map((m) => m.data), "messages sent after an await since they were stringified").toEqual([]);
  for (const { data } of nextMessages) expect(data).toMatch(/^\{"id":"[abq]","type":"next","payload":\{"data":\{"ticks":1\}\}\}$/);
});

test("yoga's SSE writer sends what a result's own stringify returns (shared-execution.ts's once-serialized JSON)", async () => {
  const result: ExecutionResult = { data: { ticks: 1 } };
  Object.defineProperty(result, "stringify", { value: () => '{"data":{"ticks":"from stringify"}}' });
  const yoga = createYoga({
    schema,
    plugins: [
      useSubscribe(async () =>
        (async function* () {
          yield result;
        })(),
      ),
    ],
  });
  const res = await yoga.fetch("http://yoga/graphql", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify({ query: "subscription { ticks }" }),
  });
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  expect(await res.text()).toContain('event: next\ndata: {"data":{"ticks":"from stringify"}}\n\n');
});

interface Installed {
  readonly name: string;
  readonly version: string;
  readonly engines?: { readonly node?: string };
  /** Its folder relative to the project, as package-lock.json names it: node_modules/a/node_modules/b. */
  readonly at: string;
}

/** Every package installed in the project's node_modules, nested copies too. */
function installed(): Installed[] {
  const found: Installed[] = [];
  const visit = (modules: string) => {
    let entries: string[];
    try {
      entries = readdirSync(new URL(modules, ROOT));
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.startsWith(".")) continue;
      const names = entry.startsWith("@") ? readdirSync(new URL(`${modules}/${entry}`, ROOT)).map((name) => `${entry}/${name}`) : [entry];
      for (const name of names) {
        const at = `${modules}/${name}`;
        let manifest: Omit<Installed, "at">;
        try {
          manifest = JSON.parse(readFileSync(new URL(`${at}/package.json`, ROOT), "utf8")) as Omit<Installed, "at">;
        } catch {
          continue; // a folder without a package.json (a .bin, a broken link) is no package
        }
        found.push({ ...manifest, at });
        visit(`${at}/node_modules`);
      }
    }
  };
  visit("node_modules");
  return found;
}

test("every installed copy of an overridden package is its pinned version, and no installed runtime package needs a Node newer than package.json's engines allow", () => {
  const pkg = JSON.parse(readFileSync(new URL("package.json", ROOT), "utf8")) as { engines: { node: string }; overrides: Record<string, string> };
  const lock = JSON.parse(readFileSync(new URL("package-lock.json", ROOT), "utf8")) as { packages: Record<string, { dev?: boolean }> };
  const packages = installed();
  const offPin = Object.entries(pkg.overrides).flatMap(([name, pinned]) => {
    const copies = packages.filter((p) => p.name === name);
    if (copies.length === 0) return [`${name} is not installed`];
    return copies.filter((p) => p.version !== pinned).map((p) => `${p.at} is ${p.version}, pinned ${pinned}`);
  });
  expect.soft(offPin).toEqual([]);
  const oldestNode = semver.minVersion(pkg.engines.node)!;
  const tooNew = packages
    .filter((p) => lock.packages[p.at]?.dev !== true)
    .filter((p) => p.engines?.node !== undefined && !semver.satisfies(oldestNode, p.engines.node))
    .map((p) => `${p.at} ${p.version} needs node ${p.engines!.node}`);
  expect(tooNew).toEqual([]);
});
