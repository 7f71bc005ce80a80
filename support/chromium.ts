import { chromium, type Browser } from "playwright-core";

/** Debian's Chromium (`apt-get install chromium`); CHROMIUM_PATH names another. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * Launches headless Chromium for tests and benchmarks. Without the flags below, Chromium calls
 * Google's hosts at start, which a closed network refuses; as root it needs --no-sandbox.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ["--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync", "--no-sandbox", "--disable-gpu"],
  });
}
