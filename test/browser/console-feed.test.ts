// The console's live feed in real Chromium: changes made through the API appear without a reload; a pause stops the display and its resume shows every change made meanwhile exactly once, in seq order per context, also for a context with no change before the pause and also when the pause outgrew what it holds; a kind and path filter shows only what matches.
import { expect, test } from "vitest";
import type { Page } from "playwright-core";
import { useTestServer } from "../helpers/app.js";
import { originOf, useBrowser, watchedPage } from "../helpers/browser.js";

const browser = useBrowser();
const server = useTestServer();

async function gql(query: string, variables: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const res = await fetch(server.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data: Record<string, any>; errors?: unknown[] };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

/** Sets /<path> of context `id` to `value` (a new value: a patch that changes nothing writes nothing); gives the change's seq. */
async function patch(id: string, path: string, value: unknown): Promise<number> {
  const data = await gql(`mutation($id: ID!, $patch: [JSONPatchOperation!]!) { patchContext(id: $id, patch: $patch) { seq } }`, {
    id,
    patch: [{ op: "add", path, value }],
  });
  return data.patchContext.seq as number;
}

/** swarm_active_subscriptions: the subscriptions the server has registered, read at each scrape. */
async function subscriptions(): Promise<number> {
  const text = await (await fetch(new URL("/metrics", server.url))).text();
  return Number(text.split("\n").find((l) => l.startsWith("swarm_active_subscriptions "))?.split(" ")[1] ?? 0);
}

/** The change rows shown, top (newest) first, as "context seq". */
const shown = (page: Page) =>
  page.locator("table.feed tbody tr[data-seq]").evaluateAll((rows) => rows.map((r) => `${r.getAttribute("data-context")} ${r.getAttribute("data-seq")}`));

test("changes appear live; pause and resume lose nothing and repeat nothing, within and past the pause's bound; filters select", async () => {
  for (const id of ["fd-a", "fd-b", "fd-c"]) await gql(`mutation($id: ID!) { createContext(id: $id, document: { x: 0, y: 0 }) { id } }`, { id });
  const before = await subscriptions();
  // hold=3: a pause holds three changes, then lets the subscription go and resumes from cursors.
  const watched = await watchedPage(browser(), originOf(server.url));
  const { page } = watched;
  await page.goto("/console/#/feed?prefix=fd-&hold=3");
  await expect.poll(subscriptions).toBe(before + 1);

  const first = `fd-a ${await patch("fd-a", "/x", 1)}`;
  await expect.poll(() => shown(page)).toEqual([first]);

  // Paused past the bound: fd-b had no change before the pause.
  await page.getByRole("button", { name: "Pause" }).click();
  await expect.poll(() => page.getByTestId("feed-status").textContent()).toMatch(/^Paused/);
  const made: string[] = [];
  for (let i = 0; i < 3; i++) {
    made.push(`fd-b ${await patch("fd-b", "/y", i + 1)}`);
    made.push(`fd-a ${await patch("fd-a", "/y", i + 1)}`);
  }
  await expect.poll(() => page.getByTestId("feed-status").textContent()).toMatch(/more changed than a pause holds/);
  // Let go of: these come from the server's replay on resume, fd-c's (no change before) from
  // its seq read at pause, fd-d's (created now) from the start of its feed.
  made.push(`fd-b ${await patch("fd-b", "/y", 10)}`, `fd-a ${await patch("fd-a", "/y", 10)}`, `fd-c ${await patch("fd-c", "/y", 10)}`);
  const created = await gql(`mutation { createContext(id: "fd-d", document: { x: 0 }) { seq } }`);
  made.push(`fd-d ${created.createContext.seq}`, `fd-d ${await patch("fd-d", "/x", 1)}`);
  expect(await shown(page)).toEqual([first]);
  await page.getByRole("button", { name: "Resume" }).click();
  // Per context in seq order, each once: held ones first, then each context's replay.
  await expect.poll(async () => (await shown(page)).length).toBe(made.length + 1);
  const rows = (await shown(page)).reverse();
  expect([...rows].sort()).toEqual([first, ...made].sort());
  for (const id of ["fd-a", "fd-b", "fd-c", "fd-d"]) {
    const seqs = rows.filter((r) => r.startsWith(`${id} `)).map((r) => Number(r.split(" ")[1]));
    expect(seqs, id).toEqual([...seqs].sort((x, y) => x - y));
  }
  expect(await page.getByTestId("feed-status").textContent()).toBe("Live");

  // Paused within the bound: held, then shown once.
  await page.getByRole("button", { name: "Pause" }).click();
  await expect.poll(() => page.getByTestId("feed-status").textContent()).toMatch(/^Paused/);
  const held = [`fd-a ${await patch("fd-a", "/x", 2)}`, `fd-b ${await patch("fd-b", "/x", 2)}`];
  await expect.poll(() => page.getByTestId("feed-status").textContent()).toBe("Paused: 2 changes waiting.");
  await page.getByRole("button", { name: "Resume" }).click();
  await expect.poll(async () => (await shown(page)).slice(0, held.length)).toEqual([...held].reverse());
  expect((await shown(page)).length).toBe(made.length + held.length + 1);

  // The filter form: UPDATED changes touching /x only.
  await page.getByLabel("Paths").fill("/x");
  await page.getByRole("checkbox", { name: "UPDATED", exact: true }).check();
  await page.getByRole("button", { name: "Apply filter" }).click();
  await page.getByTestId("feed-empty").waitFor();
  // Until the new subscription is in, changes may go unseen: repeat until one shows.
  let round = 100;
  await expect
    .poll(async () => {
      await patch("fd-a", "/y", ++round);
      await patch("fd-a", "/x", round);
      return (await shown(page)).length;
    })
    .toBeGreaterThan(0);
  // Now surely live: a lock and a /y patch (not selected), then a /x patch.
  await gql(`mutation { acquireLock(contextId: "fd-a", name: "l", holder: "h", leaseMs: 60000) { token } }`);
  await patch("fd-a", "/y", -1);
  const last = `fd-a ${await patch("fd-a", "/x", -1)}`;
  await expect.poll(async () => (await shown(page))[0]).toBe(last);
  const kinds = await page.locator("table.feed tbody tr[data-seq]").evaluateAll((rows) => rows.map((r) => `${r.getAttribute("data-kind")} ${r.querySelector("td.paths")?.textContent?.trim()}`));
  expect(new Set(kinds)).toEqual(new Set(["UPDATED /x"]));

  // A row's patch, on demand.
  await page.getByRole("button", { name: `Show the patch of ${last}`.replace(/ (\d+)$/, " seq $1") }).click();
  await expect.poll(() => page.locator("tr.detail-row pre").textContent()).toContain('"path": "/x"');
  await watched.close();
});
