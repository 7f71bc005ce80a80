// The console's shell in real Chromium: it loads from the server alone, asks for a key when the
// server has keys (refusing a wrong one), keeps it for the tab only, and shows the health page.
import { describe, expect, test } from "vitest";
import { useTestServer } from "../helpers/app.js";
import { originOf, screenshot, useBrowser, watchedPage } from "../helpers/browser.js";
import { testKeys } from "../helpers/keys.js";

const browser = useBrowser();

describe("with keys", () => {
  const keys = testKeys();
  const server = useTestServer({ keys: keys.ring });

  test("a wrong key is refused; the right one signs in, and signing out forgets it", async () => {
    const watched = await watchedPage(browser(), originOf(server.url));
    const { page } = watched;
    await page.goto("/console/");
    await page.getByLabel("API key").fill("sc_not-a-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("UNAUTHENTICATED");

    await page.getByLabel("API key").fill(keys.viewer.key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText(keys.viewer.name).waitFor();
    expect(await page.locator(".badge").textContent()).toBe("viewer");

    // Kept for the tab's session: a reload stays signed in.
    await page.reload();
    await page.getByText(keys.viewer.name).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API key").waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    // The wrong key's 401 is the one error the browser logs.
    await watched.close(/status of 401/);
  });
});

describe("in open mode", () => {
  const server = useTestServer();

  test("no sign-in; the health page shows the server ready and Redis intact", async () => {
    const watched = await watchedPage(browser(), originOf(server.url));
    const { page } = watched;
    await page.goto("/console/#/health");
    await expect.poll(() => page.getByTestId("ready").textContent()).toBe("yes");
    await expect.poll(() => page.getByTestId("redis-state").textContent()).toBe("INTACT");
    await page.getByRole("table", { name: "Server instances" }).locator("tbody tr").first().waitFor();
    await screenshot(page, "health");
    await watched.close();
  });
});
