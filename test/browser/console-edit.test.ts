// The console's edit and history views in real Chromium, with API keys: a dry-run preview shows
// the change or the problems by path; a write that lost a race shows what changed meanwhile and
// who changed it, and applies again on the new version; history pages newest first with filters,
// shows each entry's patch and any two versions' diff, and rolls back after a confirmation; a
// viewer gets no write control, and the server refuses its hand-made writes.
import { beforeAll, expect, test } from "vitest";
import { useTestServer } from "../helpers/app.js";
import { originOf, screenshot, useBrowser, watchedPage } from "../helpers/browser.js";
import { dataAs, poll, seedContexts, signInWith } from "../helpers/console.js";
import { testKeys } from "../helpers/keys.js";

const browser = useBrowser();
const keys = testKeys("in-");
// Four snapshots retained: in-hist's six versions leave 3 to 6.
const server = useTestServer({ keys: keys.ring, historyLimit: 4 });

const PATCH = `mutation($id: ID!, $p: [JSONPatchOperation!]!, $reason: String) { patchContext(id: $id, patch: $p, reason: $reason) { version } }`;
const MERGE = `mutation($id: ID!, $m: JSON!) { mergeContext(id: $id, merge: $m) { version } }`;
const READ = `query($id: ID!) { context(id: $id) { version document } }`;
const SNAPSHOT = `query($id: ID!, $v: Int!) { context(id: $id) { snapshot(version: $v) } }`;
const as = (who: "admin" | "agent", query: string, variables: Record<string, unknown>) => dataAs(server.url, keys[who].key, query, variables);

beforeAll(async () => {
  await seedContexts(server.url, keys.admin.key, ["in-edit"], () => ({ a: 1, configuration: { model: "small" } }));
  await seedContexts(server.url, keys.admin.key, ["in-hist"], () => ({ n: 0, resources: { limits: { credits: 100 } } }));
  await as("admin", PATCH, { id: "in-hist", p: [{ op: "replace", path: "/n", value: 1 }] }); // v2
  await as("agent", MERGE, { id: "in-hist", m: { n: 2 } }); // v3
  await as("agent", MERGE, { id: "in-hist", m: { note: "agent" } }); // v4
  await as("agent", `mutation { allocate(contextId: "in-hist", request: [{ kind: "credits", amount: 10 }], mode: EXACT, holder: "agent-1") { id } }`, {});
  await as("admin", PATCH, { id: "in-hist", p: [{ op: "replace", path: "/n", value: 5 }], reason: "admin fix" }); // v5
  await as("admin", MERGE, { id: "in-hist", m: { note: null } }); // v6
  // in-long: 61 entries, more than a history page (50).
  await seedContexts(server.url, keys.admin.key, ["in-long"], () => ({ step: 0 }));
  for (let from = 1; from <= 60; from += 20) {
    const writes = Array.from({ length: 20 }, (_, i) => `w${i}: mergeContext(id: "in-long", merge: { step: ${from + i} }) { version }`);
    await as("admin", `mutation { ${writes.join(" ")} }`, {});
  }
});

test("edit: a preview shows the change or the problems by path; a conflict shows what changed meanwhile, and re-applying writes both", async () => {
  const watched = await watchedPage(browser(), originOf(server.url));
  const { page } = watched;
  await signInWith(page, keys.admin.key);
  await page.goto("/console/#/swarms/in-edit?tab=edit");
  await poll(() => page.getByTestId("edit-base").textContent()).toBe("1");
  const text = page.locator("#edit-text");
  const preview = page.getByRole("button", { name: "Preview (dry run)" });

  await page.getByLabel("Merge patch").check();
  await text.fill(`{ "a": 2, "configuration": { "model": "large" } }`);
  await preview.click();
  const changes = page.getByRole("list", { name: "Changes the edit would make" });
  await poll(() => changes.locator("li").allTextContents()).toEqual(["replace/a1→2", 'replace/configuration/model"small"→"large"']);
  expect(await page.getByRole("heading", { name: "Preview: would write version 2" }).count()).toBe(1);

  await text.fill(`{ "policy": { "allocation": { "maxShare": 5, "maxDepth": 0 } } }`);
  await preview.click();
  const alert = page.getByRole("alert");
  await poll(() => alert.textContent()).toContain("VALIDATION_FAILED");
  const problems = await alert.locator("ul.problems li code").allTextContents();
  expect(problems.sort()).toEqual(["/policy/allocation/maxDepth", "/policy/allocation/maxShare"]);

  // The editor stays on version 1 while another writer makes version 2.
  await page.getByLabel("JSON Patch").check();
  await text.fill(`[{ "op": "add", "path": "/fromConsole", "value": true }]`);
  await as("agent", MERGE, { id: "in-edit", m: { fromApi: 1 } });
  await page.getByRole("button", { name: "Apply" }).click();
  const conflict = page.locator(".conflict");
  await poll(() => conflict.getByRole("heading").textContent()).toBe("Changed meanwhile: version 1 → 2");
  expect(await conflict.getByRole("table", { name: "Changes made meanwhile" }).locator("tbody tr").allTextContents()).toEqual([
    expect.stringMatching(/^2UPDATEDagent-1/),
  ]);
  expect(await conflict.getByRole("list", { name: "What changed meanwhile" }).textContent()).toBe("add/fromApi1");
  await screenshot(page, "edit-conflict");

  await conflict.getByRole("button", { name: "Re-apply on version 2" }).click();
  await poll(() => page.getByRole("heading", { name: "Written: version 3" }).count()).toBe(1);
  expect(await page.getByTestId("edit-base").textContent()).toBe("3");
  const { context } = await as("admin", READ, { id: "in-edit" });
  expect(context).toEqual({ version: 3, document: { a: 1, configuration: { model: "small" }, fromApi: 1, fromConsole: true } });
  await watched.close();
});

test("history: newest first, filters by kind and actor, entry patches, two versions' diff, rollback after a confirmation", async () => {
  const watched = await watchedPage(browser(), originOf(server.url));
  const { page } = watched;
  await signInWith(page, keys.admin.key);
  await page.goto("/console/#/swarms/in-hist?tab=history");
  const entries = page.getByRole("list", { name: "Changes, newest first" }).locator(":scope > li");
  await poll(() => entries.count()).toBe(7);
  const seqs = (await entries.evaluateAll((items) => items.map((li) => Number(li.getAttribute("data-seq")))));
  expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
  expect(await entries.first().locator(".entry-head").textContent()).toMatch(/UPDATEDversion 6by admin-1/);
  expect(await entries.nth(1).textContent()).toContain("“admin fix”");
  expect(await entries.nth(1).getByRole("list").textContent()).toBe("replace/n5");
  expect(await entries.nth(2).textContent()).toMatch(/ALLOCATED.*Allocation in-hist#1, now active/);

  await page.getByLabel("UPDATED", { exact: true }).check();
  await page.getByLabel("Actors").fill("agent-1");
  await page.getByRole("button", { name: "Filter" }).click();
  await poll(() => entries.count()).toBe(2);
  expect(await entries.locator(".actor").allTextContents()).toEqual(["agent-1", "agent-1"]);
  expect(await entries.locator(".entry-head").allTextContents()).toEqual([expect.stringMatching(/version 4/), expect.stringMatching(/version 3/)]);
  // A merge is recorded as JSON Patch adds (an add replaces a member that is there).
  expect(await entries.nth(1).getByRole("list").textContent()).toBe("add/n2");

  await page.getByText(/^Diff two versions/).click();
  await page.getByLabel("From version", { exact: true }).fill("3");
  await page.getByLabel("To version", { exact: true }).fill("5");
  await page.getByRole("button", { name: "Diff", exact: true }).click();
  await poll(() => page.getByRole("list", { name: "Changes from version 3 to 5" }).locator("li").allTextContents()).toEqual(["replace/n5", 'add/note"agent"']);
  await page.getByLabel("From version", { exact: true }).fill("1");
  await page.getByRole("button", { name: "Diff", exact: true }).click();
  await poll(() => page.getByTestId("not-retained").textContent()).toContain("the oldest retained version is 3");

  const v4 = (await as("admin", SNAPSHOT, { id: "in-hist", v: 4 })).context;
  await entries.first().getByRole("button", { name: "Roll back to version 4" }).click();
  const confirm = page.getByRole("group", { name: "Confirm rollback" });
  await poll(() => confirm.textContent()).toContain("Roll back to version 4? This writes version 7.");
  await screenshot(page, "history");
  expect((await as("admin", READ, { id: "in-hist" })).context).toMatchObject({ version: 6 }); // nothing written yet
  await confirm.getByRole("button", { name: "Confirm rollback to version 4" }).click();
  await poll(() => confirm.getByRole("status").textContent()).toBe("Rolled back: version 7 holds the document of version 4.");
  const { context } = await as("admin", READ, { id: "in-hist" });
  expect(context).toEqual({ version: 7, document: (v4 as { snapshot: unknown }).snapshot });

  // A page is 50 entries; "Older" continues where it stopped.
  await page.goto("/console/#/swarms/in-long?tab=history");
  await poll(() => entries.count()).toBe(50);
  expect(await entries.last().getAttribute("data-seq")).toBe("12");
  await page.getByRole("button", { name: "Older" }).click();
  await poll(() => entries.count()).toBe(61);
  expect(await entries.last().textContent()).toMatch(/^#1CREATED/);
  expect(await page.getByText("End of the retained history.").count()).toBe(1);
  await watched.close();
});

test("a viewer sees no write control, and the server refuses a write made by hand from its session (at 800 px)", async () => {
  const watched = await watchedPage(browser(), originOf(server.url), 800);
  const { page } = watched;
  await signInWith(page, keys.viewer.key);
  const writeControls = async () => {
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), "the page fits 800 px").toBe(true);
    return page.getByRole("button", { name: /apply|roll ?back|preview|confirm/i }).count();
  };
  await page.goto("/console/#/swarms/in-hist?tab=edit");
  await page.getByRole("list", { name: "Document" }).waitFor();
  expect(await page.getByRole("navigation", { name: "Swarm views" }).getByRole("link").allTextContents()).not.toContain("Edit");
  expect(await writeControls()).toBe(0);

  await page.getByRole("link", { name: "History" }).click();
  await page.getByRole("list", { name: "Changes, newest first" }).locator("li").first().waitFor();
  await page.getByText(/^Diff two versions/).click();
  expect(await writeControls()).toBe(0);
  expect(await page.getByLabel("Roll back to version").count()).toBe(0);

  await page.getByRole("link", { name: "← Swarms" }).click();
  await page.getByRole("table", { name: "Swarms" }).locator("tbody tr").first().waitFor();
  expect(await writeControls()).toBe(0);

  const code = await page.evaluate(async () => {
    const key = sessionStorage.getItem("swarm-context-key");
    const res = await fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: `mutation { mergeContext(id: "in-hist", merge: { hacked: true }) { version } }` }),
    });
    const body = await res.json();
    return body.errors?.[0]?.extensions?.code;
  });
  expect(code).toBe("FORBIDDEN");
  expect((await as("admin", READ, { id: "in-hist" })).context).not.toHaveProperty("document.hacked");
  await watched.close();
});
