// The console's load in Debian's Chromium: bytes transferred by a first load of /console/ (every
// file, compressed, as the browser received them) and by a reload; and the time from navigation
// until the swarm list shows 1,000 swarms (page size 1000), median of several loads.
import type { Page } from "playwright-core";
import { launchChromium } from "../support/chromium.js";

export interface ConsoleLoadResult {
  readonly firstLoad: { readonly requests: number; readonly bytes: number };
  readonly reload: { readonly requests: number; readonly bytes: number };
  /** ms from navigation start to 1,000 rows, per load. */
  readonly listMs: readonly number[];
}

/** Bytes the page's network received (headers and bodies, compressed), counted through the DevTools protocol until `done` resolves. */
async function transferred(page: Page, navigate: () => Promise<unknown>): Promise<{ requests: number; bytes: number }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: false });
  let bytes = 0;
  let requests = 0;
  cdp.on("Network.loadingFinished", (event) => {
    bytes += event.encodedDataLength;
    requests += 1;
  });
  await navigate();
  await page.waitForLoadState("networkidle");
  await cdp.detach();
  return { requests, bytes };
}

/** Loads the console against `origin` (a server whose scope holds at least 1,000 swarms) `loads` times. */
export async function consoleLoad(origin: string, listRoute: string, rowSelector: string, loads: number): Promise<ConsoleLoadResult> {
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const firstLoad = await transferred(page, () => page.goto(`${origin}/console/`));
    const reload = await transferred(page, () => page.reload());
    const listMs: number[] = [];
    for (let i = 0; i < loads; i++) {
      const fresh = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const tab = await fresh.newPage();
      const started = performance.now();
      await tab.goto(`${origin}/console/${listRoute}`);
      await tab.waitForFunction((selector) => document.querySelectorAll(selector).length >= 1000, rowSelector, { timeout: 60_000, polling: "raf" });
      listMs.push(performance.now() - started);
      await fresh.close();
    }
    return { firstLoad, reload, listMs };
  } finally {
    await browser.close();
  }
}
