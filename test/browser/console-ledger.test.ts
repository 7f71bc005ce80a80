// The console's budget and locks tabs in real Chromium: bars and tree numbers match the API, usage and refusals made through the API show up live, an admin releases an allocation through the console (after confirming) while a viewer gets no release button, and a lock appears with holder, token and countdown and goes when released.
import { expect, test } from "vitest";
import type { Page } from "playwright-core";
import { useTestServer } from "../helpers/app.js";
import { originOf, screenshot, useBrowser, watchedPage } from "../helpers/browser.js";
import { testKeys, type TestKey } from "../helpers/keys.js";

const browser = useBrowser();
const keys = testKeys("in-");
const server = useTestServer({ keys: keys.ring });
const ID = "in-ledger";

type Amounts = { kind: string; amount: number }[];
interface Allocation {
  id: string;
  status: string;
  granted: Amounts;
  consumed: Amounts;
  reserved: Amounts;
  available: Amounts;
}

async function gql<T = Record<string, any>>(key: TestKey, query: string, variables: Record<string, unknown> = {}): Promise<{ data: T; errors?: { extensions: { code: string } }[] }> {
  const res = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: key.authorization },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data: T; errors?: { extensions: { code: string } }[] };
}

const FIELDS = `id status granted { kind amount } consumed { kind amount } reserved { kind amount } available { kind amount }`;
async function allocate(parentId: string | null, request: Record<string, number>, holder: string): Promise<Allocation> {
  const res = await gql(keys.agent, `mutation($id: ID!, $parent: ID, $request: [ResourceAmountInput!], $holder: String) {
    allocate(contextId: $id, parentId: $parent, request: $request, mode: EXACT, holder: $holder, purpose: "test", leaseMs: 600000) { ${FIELDS} } }`, {
    id: ID,
    parent: parentId,
    request: Object.entries(request).map(([kind, amount]) => ({ kind, amount })),
    holder,
  });
  return res.data.allocate as Allocation;
}
const reportUsage = (a: string, credits: number) =>
  gql(keys.agent, `mutation($a: ID!, $n: Float!) { reportUsage(allocationId: $a, usage: [{ kind: "credits", amount: $n }]) { id } }`, { a, n: credits });
const readAllocation = async (a: string) => (await gql(keys.admin, `query($a: ID!) { allocation(id: $a) { ${FIELDS} } }`, { a })).data.allocation as Allocation;

/** The numbers of a bar's figures ("20 consumed, 30 reserved, 50 available of 100"), in order. */
async function figures(page: Page, scope: string, kind: string): Promise<number[]> {
  const text = await page.locator(`${scope} li[data-kind="${kind}"] .bar-figures`).first().textContent();
  return (text?.match(/\d[\d,]*/g) ?? []).map((n) => Number(n.replace(/,/g, "")));
}
const of = (list: Amounts, kind: string) => list.find((a) => a.kind === kind)?.amount ?? 0;
const allocationFigures = (a: Allocation, kind: string) => [of(a.consumed, kind), of(a.reserved, kind), of(a.available, kind), of(a.granted, kind)];
const node = (id: string) => `li[data-allocation="${id}"]`;

/** swarm_active_subscriptions of the server: subscriptions it has registered, read at each scrape. */
async function subscriptions(): Promise<number> {
  const text = await (await fetch(new URL("/metrics", server.url), { headers: { authorization: keys.admin.authorization } })).text();
  return Number(text.split("\n").find((l) => l.startsWith("swarm_active_subscriptions "))?.split(" ")[1] ?? 0);
}

/** Opens the console signed in with `key` (kept for the tab, as the sign-in form would). */
async function open(key: TestKey, hash: string) {
  const watched = await watchedPage(browser(), originOf(server.url));
  await watched.page.addInitScript((k) => sessionStorage.setItem("swarm-context-key", k), key.key);
  await watched.page.goto(`/console/${hash}`);
  return watched;
}

test("budget: bars and tree match the API, usage and refusals show up live, an admin releases after confirming; locks come and go", async () => {
  const created = await gql(keys.admin, `mutation($id: ID!) { createContext(id: $id, document: { resources: { limits: { credits: 1000, tokens: 50000 } } }) { id } }`, { id: ID });
  expect(created.errors).toBeUndefined();
  const run1 = await allocate(null, { credits: 300, tokens: 10000 }, "run-1");
  const step1 = await allocate(run1.id, { credits: 100 }, "step-1");
  await allocate(step1.id, { credits: 10 }, "sub-1");
  const run2 = await allocate(null, { credits: 200 }, "run-2");
  await reportUsage(step1.id, 40);
  await reportUsage(run1.id, 20);

  const before = await subscriptions();
  const watched = await open(keys.admin, `#/swarms/${ID}?tab=budget`);
  const { page } = watched;
  await page.locator(node(run2.id)).waitFor();
  const budget = (await gql(keys.admin, `query($id: ID!) { context(id: $id) { budget { limits { kind amount } granted { kind amount } consumed { kind amount } available { kind amount } } } }`, { id: ID })).data.context.budget;
  for (const kind of ["credits", "tokens"]) {
    expect(await figures(page, '[aria-label="Budget"]', kind), kind).toEqual([of(budget.consumed, kind), of(budget.granted, kind), of(budget.available, kind), of(budget.limits, kind)]);
  }
  expect(await figures(page, node(run1.id), "credits")).toEqual(allocationFigures(await readAllocation(run1.id), "credits"));
  expect(await figures(page, node(run1.id), "tokens")).toEqual(allocationFigures(await readAllocation(run1.id), "tokens"));

  // Tier 3 under run-1, tier 4 under the step.
  await page.getByRole("button", { name: `Show the children of ${run1.id}` }).click();
  await page.getByRole("button", { name: `Show the children of ${step1.id}` }).click();
  await page.locator(`${node(step1.id)} li[data-allocation]`).first().waitFor();
  expect(await figures(page, node(step1.id), "credits")).toEqual(allocationFigures(await readAllocation(step1.id), "credits"));

  // Live: the page's three subscriptions (head, ledger changes, refusals) are in; usage and a refusal through the API show up.
  await expect.poll(subscriptions).toBeGreaterThanOrEqual(before + 3);
  await reportUsage(step1.id, 5);
  const spent = allocationFigures(await readAllocation(step1.id), "credits");
  await expect.poll(() => figures(page, node(step1.id), "credits")).toEqual(spent);
  const refused = await gql(keys.agent, `mutation($id: ID!) { allocate(contextId: $id, request: [{ kind: "credits", amount: 100000 }], mode: EXACT) { id } }`, { id: ID });
  expect(refused.errors?.map((e) => e.extensions.code)).toEqual(["INSUFFICIENT_RESOURCES"]);
  const row = page.getByRole("table", { name: "Refusals" }).locator("tbody tr").first();
  await row.waitFor();
  const cells = await row.locator("td").allTextContents();
  expect(cells.slice(1, 6)).toEqual([keys.agent.name, "allocate", "INSUFFICIENT_RESOURCES", "credits 100,000", `credits ${of(budget.available, "credits").toLocaleString("en-US")}`]);
  await screenshot(page, "budget");

  // Release through the console: nothing happens before the confirmation.
  await page.getByRole("button", { name: `Release ${run2.id}` }).click();
  const confirm = page.getByRole("group", { name: `Confirm the release of ${run2.id}` });
  await confirm.waitFor();
  expect((await readAllocation(run2.id)).status).toBe("ACTIVE");
  await confirm.getByRole("button", { name: "Confirm release" }).click();
  await expect.poll(() => page.locator(`${node(run2.id)} [data-testid="status"]`).textContent()).toBe("RELEASED");
  expect((await readAllocation(run2.id)).status).toBe("RELEASED");

  // Locks: one taken through the API appears with holder, token and countdown, and goes when released.
  await page.getByRole("link", { name: "Locks" }).click();
  await page.getByTestId("no-locks").waitFor();
  const taken = await gql(keys.agent, `mutation($id: ID!) { acquireLock(contextId: $id, name: "writer", holder: "agent-7", leaseMs: 600000) { token } }`, { id: ID });
  const lockRow = page.locator('tr[data-lock="writer"]');
  await lockRow.waitFor();
  expect((await lockRow.locator("td").allTextContents()).slice(0, 3)).toEqual(["writer", "agent-7", String(taken.data.acquireLock.token)]);
  expect(await lockRow.locator(".countdown").textContent()).toMatch(/^(9|10)m \d+s$/);
  await gql(keys.agent, `mutation($id: ID!, $token: Int!) { releaseLock(contextId: $id, name: "writer", token: $token) { token } }`, { id: ID, token: taken.data.acquireLock.token });
  await page.getByTestId("no-locks").waitFor();
  await watched.close();
});

test("a viewer sees the tree and no release button", async () => {
  const watched = await open(keys.viewer, `#/swarms/${ID}?tab=budget`);
  const { page } = watched;
  await page.locator("li[data-allocation]").first().waitFor();
  expect(await page.getByRole("button", { name: /^Release / }).count()).toBe(0);
  await watched.close();
});
