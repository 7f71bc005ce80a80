import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { contentType, fileLoader, listFiles, type StaticEntry } from "./static-files.js";

/**
 * The console's Content-Security-Policy: its own files and its own origin only (fetch, WebSocket),
 * no inline script or style, no frames.
 */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The directory of an installed package, found as Node finds it from here. */
function packageDir(name: string): string {
  for (const modules of createRequire(import.meta.url).resolve.paths(name) ?? []) {
    if (existsSync(join(modules, name, "package.json"))) return join(modules, name);
  }
  throw new Error(`package ${name} is not installed: run npm install`);
}

/** The console's directory: console/ beside src/ in the repository, dist/console/ in a build (`npm run build` copies it). */
export const CONSOLE_DIR = fileURLToPath(new URL("../../console/", import.meta.url));

/**
 * The console's files by URL path: everything under CONSOLE_DIR at /console/<path> (index.html
 * also at /console/), and the libraries it imports from node_modules under /console/vendor/:
 * preact with hooks and htm as one module, and the graphql-ws client with the chunk it imports.
 * None when CONSOLE_DIR is missing (a build that left it out): the API does not need it.
 */
export function consoleFiles(dir = CONSOLE_DIR): Map<string, StaticEntry> {
  const files = new Map<string, StaticEntry>();
  if (!existsSync(dir)) return files;
  for (const name of listFiles(dir)) {
    const entry: StaticEntry = { load: fileLoader(join(dir, name)), type: contentType(name), caching: "revalidate", ...(name.endsWith(".html") ? { csp: CONSOLE_CSP } : {}) };
    files.set(`/console/${name}`, entry);
    if (name === "index.html") files.set("/console/", entry);
  }
  files.set("/console/vendor/htm-preact.js", { load: fileLoader(join(packageDir("htm"), "preact", "standalone.mjs")), caching: "revalidate" });
  const dist = join(packageDir("graphql-ws"), "dist");
  for (const name of readdirSync(dist)) {
    if (name === "client.js" || (name.startsWith("common-") && name.endsWith(".js"))) {
      files.set(`/console/vendor/graphql-ws/${name}`, { load: fileLoader(join(dist, name)), caching: "revalidate" });
    }
  }
  return files;
}
