// The console's swarms list and document view in real Chromium: search by prefix, paging with
// totals, a 1,000-row page, rows and the swarm page kept current from the change feed without a
// reload, and a large document's tree that lists 200 children at a time, with slices.
import type { Socket } from "node:net";
import { beforeAll, expect, test } from "vitest";
import { useTestServer } from "../helpers/app.js";
import { originOf, screenshot, useBrowser, watchedPage } from "../helpers/browser.js";
import { dataAs, poll, seedContexts, untilSubscriptions } from "../helpers/console.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";

const browser = useBrowser();
const server = useTestServer();

const SEEDED = 1_050;
const ids = Array.from({ length: SEEDED }, (_, i) => `sw-${String(i).padStart(4, "0")}`);
const BIG_KEYS = 5_000;
const TOTAL = SEEDED + 3; // and live-1, live-2, doc-big

const write = (query: string, variables: Record<string, unknown>) => dataAs(server.url, null, query, variables);
const MERGE = `mutation($id: ID!, $m: JSON!) { mergeContext(id: $id, merge: $m) { version } }`;

beforeAll(async () => {
  await seedContexts(server.url, null, ids, (id) => ({ name: id }));
  await seedContexts(server.url, null, ["live-1", "live-2"], (id) => ({ name: id, status: "new" }));
  const entries = Object.fromEntries(Array.from({ length: BIG_KEYS }, (_, i) => [`agent-${String(i).padStart(4, "0")}`, { state: "idle", notes: "x".repeat(80), step: i }]));
  await seedContexts(server.url, null, ["doc-big"], () => ({ blackboard: { agents: entries }, policy: { allocation: { maxShare: 0.5 } } }));
});

test("the list: search by prefix, next and previous pages with totals, a 1,000-row page; usable at 800 px", async () => {
  const watched = await watchedPage(browser(), originOf(server.url));
  const { page } = watched;
  const rows = page.getByRole("table", { name: "Swarms" }).locator("tbody tr");
  const range = page.getByTestId("list-range");
  const firstId = () => rows.first().locator("th").textContent();
  await page.goto("/console/#/swarms");
  await poll(() => range.textContent()).toBe(`1–50 of ${TOTAL.toLocaleString("en-US")}`);
  expect(await rows.count()).toBe(50);
  expect(await firstId()).toBe("doc-big");
  await screenshot(page, "swarms");

  await page.getByRole("button", { name: "Next" }).click();
  await poll(() => range.textContent()).toBe(`51–100 of ${TOTAL.toLocaleString("en-US")}`);
  expect(await firstId()).toBe("sw-0047");
  await page.getByRole("button", { name: "Next" }).click();
  await poll(() => range.textContent()).toBe(`101–150 of ${TOTAL.toLocaleString("en-US")}`);
  await page.getByRole("button", { name: "Previous" }).click();
  await poll(() => range.textContent()).toBe(`51–100 of ${TOTAL.toLocaleString("en-US")}`);
  expect(await firstId()).toBe("sw-0047");

  await page.getByLabel("Id starts with").fill("sw-104");
  await poll(() => range.textContent()).toBe("1–10 of 10");
  expect(await rows.allTextContents()).toHaveLength(10);
  expect(await firstId()).toBe("sw-1040");
  expect(await page.getByRole("button", { name: "Next" }).isDisabled()).toBe(true);

  // 800 px: the table scrolls inside its box; the page itself does not overflow.
  await page.setViewportSize({ width: 800, height: 800 });
  expect(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth)).toBe(true);
  expect(await page.getByLabel("Rows per page").isVisible()).toBe(true);
  await page.setViewportSize({ width: 1280, height: 800 });

  await page.getByLabel("Id starts with").fill("sw-");
  await poll(() => range.textContent()).toBe(`1–50 of ${SEEDED.toLocaleString("en-US")}`);
  const started = Date.now();
  await page.getByLabel("Rows per page").selectOption("1000");
  await poll(() => range.textContent()).toBe(`1–1,000 of ${SEEDED.toLocaleString("en-US")}`);
  console.info(`console: 1,000 swarms listed ${Date.now() - started} ms after choosing 1,000 rows per page`);
  expect(await rows.count()).toBe(1000);
  expect(await rows.last().locator("th").textContent()).toBe("sw-0999");
  await page.getByRole("button", { name: "Next" }).click();
  await poll(() => range.textContent()).toBe(`1,001–1,050 of ${SEEDED.toLocaleString("en-US")}`);
  await watched.close();
});

test("live: a change through the API shows in the list and on the swarm page without a reload; a new swarm is announced", async () => {
  const watched = await watchedPage(browser(), originOf(server.url));
  const { page } = watched;
  const version = (id: string) => page.locator(`tr[data-id="${id}"] td[data-col="version"]`).textContent();
  await page.goto("/console/#/swarms?prefix=live-");
  await poll(() => version("live-1")).toBe("1");
  await untilSubscriptions(server.url, null, 2); // the rows' changes, and new swarms

  await write(MERGE, { id: "live-1", m: { status: "running" } });
  await poll(() => version("live-1")).toBe("2");
  expect(await version("live-2")).toBe("1");

  await seedContexts(server.url, null, ["live-3"], () => ({ status: "new" }));
  await page.getByTestId("new-swarms").click();
  await poll(() => version("live-3")).toBe("1");

  await page.getByRole("link", { name: "live-1" }).click();
  const tree = page.getByRole("list", { name: "Document" });
  await poll(() => tree.textContent()).toContain('"running"');
  await untilSubscriptions(server.url, null, 1); // the swarm page's head
  await write(MERGE, { id: "live-1", m: { status: "done" } });
  await poll(() => page.getByTestId("version").textContent()).toBe("3");
  await poll(() => tree.textContent()).toContain('"done"');
  await watched.close();
});

test("after the WebSocket drops, the list's rows and the swarm page's head catch up with changes made while it was down", async () => {
  // The page reaches the server through a proxy that can cut every connection and refuse new ones.
  let down = false;
  const open = new Set<Socket>();
  const proxy = await startTcpProxy(Number(new URL(server.url).port), (client, upstream) => {
    if (down) return void client.destroy();
    open.add(client);
    client.on("close", () => open.delete(client));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const cut = async (write: () => Promise<unknown>) => {
    down = true;
    for (const socket of open) socket.destroy();
    await write();
    down = false;
  };
  const origin = `http://127.0.0.1:${proxy.port}`;
  const watched = await watchedPage(browser(), origin);
  const { page } = watched;
  try {
    const version = (id: string) => page.locator(`tr[data-id="${id}"] td[data-col="version"]`).textContent();
    await page.goto("/console/#/swarms?prefix=live-2");
    await poll(() => version("live-2")).toBe("1");
    await untilSubscriptions(server.url, null, 2);
    await cut(() => write(MERGE, { id: "live-2", m: { status: "while down" } }));
    await poll(() => version("live-2")).toBe("2");

    await page.getByRole("link", { name: "live-2" }).click();
    await poll(() => page.getByTestId("version").textContent()).toBe("2");
    await untilSubscriptions(server.url, null, 1);
    await cut(() => write(MERGE, { id: "live-2", m: { status: "down again" } }));
    await poll(() => page.getByTestId("version").textContent()).toBe("3");
  } finally {
    // The cut connections' failed requests are the errors this scenario causes.
    await watched.close(/ERR_CONNECTION|WebSocket connection/);
    await proxy.close();
  }
});

test("the document: a 5,000-key document as a tree, 200 children at a time, pointers, slices", async () => {
  const watched = await watchedPage(browser(), originOf(server.url));
  const { page } = watched;
  await page.goto("/console/#/swarms/doc-big?tab=document");
  const tree = page.getByRole("list", { name: "Document" });
  const agents = tree.getByRole("button", { name: /^agents \{5,000 keys\}/ });
  // Depth 1 open: the root's members are listed, theirs are not.
  await tree.getByRole("button", { name: /^blackboard/ }).click();
  expect(await agents.getAttribute("aria-expanded")).toBe("false");
  await tree.getByRole("button", { name: /^policy/ }).press("Enter");
  await tree.getByRole("button", { name: /^allocation/ }).press("Space");
  // A node's pointer shows while it has focus (or the pointer is over it), with a copy button.
  const copy = page.getByRole("button", { name: "Copy pointer /policy/allocation/maxShare" });
  await copy.focus();
  const pointer = tree.locator(".jt-row", { has: copy }).locator(".jt-pointer");
  expect(await pointer.textContent()).toBe("/policy/allocation/maxShare");
  expect(await pointer.evaluate((e) => getComputedStyle(e).opacity)).toBe("1");
  await screenshot(page, "document");

  await agents.press("Enter");
  const children = tree.getByRole("button", { name: /^agent-\d{4} / });
  await poll(() => children.count()).toBe(200);
  await tree.getByRole("button", { name: /^Show 200 more/ }).click();
  await poll(() => children.count()).toBe(400);
  await tree.getByRole("button", { name: /^agent-0399 / }).press("Space");
  expect(await tree.locator(".jt-pointer", { hasText: "/blackboard/agents/agent-0399/step" }).count()).toBe(1);

  await page.getByLabel("JSON Pointers (comma or newline separated)").fill("/policy/allocation/maxShare, /blackboard/agents/agent-4999\n/nothing");
  await page.getByRole("button", { name: "Read slice" }).click();
  const results = page.getByLabel("Slice results");
  await poll(() => results.textContent()).toContain("0.5");
  const text = await results.textContent();
  expect(text).toContain("/blackboard/agents/agent-4999");
  expect(text).toContain("4999");
  expect(text).toContain("does not resolve");
  await watched.close();
});
