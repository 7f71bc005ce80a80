import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, expect } from "vitest";
import { launchChromium } from "../../support/chromium.js";

/** Where screenshots go (ignored by git). */
export const SCREENSHOTS = join(process.cwd(), "test-results", "screenshots");

/** Launches headless Chromium (support/chromium.ts) in beforeAll and closes it in afterAll; the function gives it once launched. */
export function useBrowser(): () => Browser {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });
  return () => {
    if (!browser) throw new Error("useBrowser: the browser starts in beforeAll; use it from a test or a later hook");
    return browser;
  };
}

/** A page and what it did that a test checks afterwards. */
export interface WatchedPage {
  readonly page: Page;
  /** Requests to anywhere but `origin` (data: and blob: URLs aside). */
  readonly foreignRequests: string[];
  /** Console errors and uncaught page errors. */
  readonly errors: string[];
  /**
   * Expects every control on the page as it is now to have an accessible name (see
   * unnamedControls), no foreign request and no error but those matching `allowed` (an error the
   * scenario causes on purpose, such as the 401 of a wrong key); closes the page's browser context.
   */
  close(allowed?: RegExp): Promise<void>;
}

/**
 * Opens a page in a browser context of its own (no shared storage: a new tab session) at
 * `width` x 800, watching every request it makes and every error it logs.
 */
export async function watchedPage(browser: Browser, origin: string, width = 1280): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width, height: 800 }, baseURL: origin });
  const page = await context.newPage();
  const foreignRequests: string[] = [];
  const errors: string[] = [];
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith("data:") && !url.startsWith("blob:") && new URL(url).origin !== origin) foreignRequests.push(url);
  });
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.stack ?? error.message));
  return {
    page,
    foreignRequests,
    errors,
    close: async (allowed) => {
      const unnamed = page.isClosed() ? [] : await unnamedControls(page);
      await context.close();
      expect(unnamed, "controls without an accessible name").toEqual([]);
      expect(foreignRequests, "requests to anywhere but the server").toEqual([]);
      expect(errors.filter((e) => !allowed?.test(e)), "browser console errors").toEqual([]);
    },
  };
}

/**
 * The controls of `page` (inputs, selects, text areas, buttons, links) that have no accessible
 * name, as short descriptions: a screen reader could only call them "button" or "edit text".
 * Names come from a <label>, aria-label, aria-labelledby, a title, or (buttons, links) their text.
 * Hidden controls and the GraphiQL page's own (it is not ours) are not checked.
 */
export async function unnamedControls(page: Page): Promise<string[]> {
  if (page.url().includes("/graphql")) return [];
  return page.evaluate(() => {
    const controls = document.querySelectorAll<HTMLElement>("input:not([type=hidden]), select, textarea, button, a[href]");
    const unnamed: string[] = [];
    for (const el of controls) {
      if (!el.checkVisibility()) continue;
      const labelled = (el as HTMLInputElement).labels?.length || el.getAttribute("aria-label")?.trim() || el.getAttribute("title")?.trim();
      const byId = el.getAttribute("aria-labelledby")?.split(" ").some((id) => document.getElementById(id)?.textContent?.trim());
      const text = (el.tagName === "BUTTON" || el.tagName === "A") && el.textContent?.trim();
      if (!labelled && !byId && !text) unnamed.push(el.outerHTML.slice(0, 120));
    }
    return unnamed;
  });
}

/** Saves a screenshot of `page` (its viewport) as test-results/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

/** The server's origin, from its GraphQL URL. */
export function originOf(graphqlUrl: string): string {
  return new URL(graphqlUrl).origin;
}
