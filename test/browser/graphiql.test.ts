// GraphiQL in real Chromium, offline: it loads from the server alone, takes an agent's key in its Headers tab (and may introspect with it), runs the first tab's query and its subscription, which sees a change made meanwhile through the API; a reload transfers almost nothing.
import { afterAll, beforeAll, expect, test } from "vitest";
import { useTestServer } from "../helpers/app.js";
import { screenshot, useBrowser, watchedPage } from "../helpers/browser.js";
import { startCountingProxy, type CountingProxy } from "../helpers/counting-proxy.js";
import { testKeys } from "../helpers/keys.js";

const browser = useBrowser();
// The first tab's operations name the context "my-swarm"; the agent's scope holds it.
const keys = testKeys("my-");
const server = useTestServer({ keys: keys.ring });
let proxy: CountingProxy;

beforeAll(async () => {
  proxy = await startCountingProxy(server.url);
});

afterAll(async () => {
  await proxy?.close();
});

async function asAdmin(query: string): Promise<Record<string, unknown>> {
  const res = await fetch(server.url, { method: "POST", headers: { authorization: keys.admin.authorization, "content-type": "application/json" }, body: JSON.stringify({ query }) });
  const body = (await res.json()) as { data?: Record<string, unknown>; errors?: unknown };
  if (body.errors || !body.data) throw new Error(`admin ${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** The feed subscriptions the server is serving (its metrics). */
async function activeSubscriptions(): Promise<number> {
  const res = await fetch(new URL("/metrics", server.url), { headers: { authorization: keys.admin.authorization } });
  return Number(/^swarm_active_subscriptions (\d+)$/m.exec(await res.text())?.[1]);
}

/** Bytes the server sent for GraphiQL's page and files (every GET), and for GraphQL requests (POST). */
function transferred(): { files: number; graphql: number } {
  let files = 0;
  let graphql = 0;
  for (const [request, bytes] of proxy.bytes) {
    if (request.startsWith("GET ")) files += bytes;
    else graphql += bytes;
  }
  return { files, graphql };
}

test("with an agent's key in the Headers tab: the schema, a query, a live change; a reload transfers under 10 KB", async () => {
  await asAdmin(`mutation { createContext(id: "my-swarm", document: { resources: { limits: { credits: 100 } } }) { id } }`);
  const watched = await watchedPage(browser(), proxy.origin);
  const { page } = watched;
  const query = page.locator(".graphiql-query-editor");
  const response = page.locator(".graphiql-response");
  const docs = page.locator(".graphiql-doc-explorer");
  // Monaco writes spaces as no-break spaces.
  const responseText = async () => (await response.textContent())?.replace(/\u00a0/g, " ") ?? "";

  await page.goto("/graphql");
  await query.locator(".view-lines").waitFor();

  // The Headers tab is open, with the hint; the key replaces it (typed: Monaco closes brackets
  // and quotes itself, and what it added after the cursor is deleted).
  const headers = page.locator(".graphiql-editor-tool .graphiql-editor").last();
  expect((await headers.textContent())?.replace(/\u00a0/g, " ")).toContain('// "authorization": "Bearer <key>"');
  await headers.locator(".view-lines").click();
  await page.keyboard.press("Control+A");
  await page.keyboard.type(`{"authorization": "${keys.agent.authorization}"}`);
  await page.keyboard.press("Shift+Control+End");
  await page.keyboard.press("Delete");
  await page.getByRole("button", { name: /Re-fetch GraphQL schema/ }).click();
  await page.getByRole("button", { name: /Documentation Explorer/ }).click();
  await docs.getByText("Root Types").waitFor();

  // The query, cursor inside it.
  await query.locator(".view-line", { hasText: "context(id" }).click();
  await page.keyboard.press("Control+Enter");
  await expect.poll(responseText).toContain('"id": "my-swarm"');
  expect(await responseText()).toContain('"version": 1');

  // The subscription (the tab's last operation), then a change through the API.
  await query.locator(".view-lines").click();
  await page.keyboard.press("Control+End");
  await page.keyboard.press("ArrowUp");
  await page.keyboard.press("ArrowUp");
  await page.keyboard.press("Control+Enter");
  await expect.poll(activeSubscriptions).toBe(1);
  await asAdmin(`mutation { mergeContext(id: "my-swarm", merge: { note: "from the API" }) { version } }`);
  await expect.poll(responseText).toContain('"kind": "UPDATED"');
  expect(await responseText()).toContain('"/note"');
  await screenshot(page, "graphiql");

  // Tabs and the key are kept for this browser tab only.
  expect(await page.evaluate(() => sessionStorage.getItem("graphiql:headers"))).toContain(keys.agent.key);
  expect(await page.evaluate(() => localStorage.length)).toBe(0);

  // A second load: the page is revalidated, its files come from the cache. GraphiQL then
  // introspects again (a GraphQL request, counted apart).
  const firstLoad = transferred();
  proxy.reset();
  await page.reload();
  await docs.getByText("Root Types").waitFor();
  const reload = transferred();
  console.info(`GraphiQL: first load ${firstLoad.files} bytes of files (and ${firstLoad.graphql} of GraphQL); reload ${reload.files} bytes of files, plus ${reload.graphql} of GraphQL (introspection)`);
  expect(firstLoad.files).toBeGreaterThan(1_000_000);
  expect(reload.files).toBeLessThan(10_000);
  // The key-less introspection of the first load is the one error the browser logs.
  await watched.close(/status of 401/);
});
