import type { IncomingMessage, ServerResponse } from "node:http";
import type { GraphiQLOptions } from "graphql-yoga";
import { jsonError } from "./http-answers.js";
import { contentHash, StaticFiles, type StaticEntry } from "./static-files.js";

/** Where GraphiQL's files are served, each as <content hash>.<ext>, cached for good. */
const FILES = "/graphiql/";

/**
 * The GraphiQL page's Content-Security-Policy: scripts, workers and connections of its own origin
 * only, no inline script. Styles need 'unsafe-inline': Monaco (GraphiQL's editor) positions each
 * line with a style attribute written through innerHTML, and creates <style> elements for its
 * theme without a nonce; without them the editors' lines overlap and lose their colours (see
 * docs/decisions/graphiql-assets.md). Fonts and icons are data: URLs inside the stylesheet.
 */
export const GRAPHIQL_CSP =
  "default-src 'none'; script-src 'self'; worker-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The pieces of GraphiQL that @graphql-yoga/render-graphiql inlines into its page. */
type Pieces = typeof import("@graphql-yoga/render-graphiql/graphiql");

/** GraphiQL's own files (options aside): the same for every server of the process. */
interface Assets {
  readonly files: StaticFiles;
  /** URL paths of the stylesheet, the favicon (none if the module's is not a data: URL) and the GraphiQL bundle. */
  readonly css: string;
  readonly favicon: string;
  readonly js: string;
  /** URL path of each Monaco worker, by the label Monaco asks for. */
  readonly workers: Readonly<Record<string, string>>;
}

let assets: Promise<Assets> | undefined;

/**
 * Imports the 9 MB module on first use (not at server start: most servers never serve GraphiQL)
 * and names its pieces by their content hashes. Process-wide, like the module itself, so that
 * each piece is compressed once however many servers the process runs.
 */
function loadAssets(): Promise<Assets> {
  if (!assets) {
    assets = import("@graphql-yoga/render-graphiql/graphiql").then(assetsOf);
    // A failed import is retried by the next request rather than kept.
    assets.catch(() => (assets = undefined));
  }
  return assets;
}

/** A file named by its content's hash, served as immutable. */
function hashed(files: Map<string, StaticEntry>, ext: string, content: Buffer | string, extra: Partial<StaticEntry> = {}): string {
  const path = `${FILES}${contentHash(content)}.${ext}`;
  files.set(path, { load: () => content, caching: "immutable", ...extra });
  return path;
}

function assetsOf(pieces: Pieces): Assets {
  const files = new Map<string, StaticEntry>();
  const favicon = /^data:([^;,]+);base64,(.*)$/s.exec(pieces.favicon);
  return {
    css: hashed(files, "css", pieces.css),
    // The module gives the favicon as a data: URL; it is served as the file it encodes.
    favicon: favicon ? hashed(files, "ico", Buffer.from(favicon[2]!, "base64"), { type: favicon[1] }) : "",
    js: hashed(files, "js", pieces.js),
    workers: {
      editorWorkerService: hashed(files, "js", pieces.editorWorkerService),
      json: hashed(files, "js", pieces.jsonWorker),
      graphql: hashed(files, "js", pieces.graphqlWorker),
    },
    files: new StaticFiles(files),
  };
}

/** What the GraphiQL page says: it depends on whether the server has keys. */
export interface GraphiqlSettings {
  /** The GraphQL endpoint's path (GET with Accept: text/html there is the page). */
  readonly endpoint: string;
  /** Whether requests need an API key (false: open mode). */
  readonly keyed: boolean;
}

/**
 * GraphiQL's options: a first tab that shows how to read a swarm and follow its changes, a hint
 * for the key in the Headers tab, and subscriptions over SSE, which carries the Headers tab's
 * Authorization (graphql-ws would take only fixed connectionParams).
 */
export function graphiqlOptions(settings: GraphiqlSettings): GraphiQLOptions {
  // Lines of at most 50 characters: what the editors show at 1280 px without scrolling.
  const key = settings.keyed
    ? [
        "# 1. Put your API key in the Headers tab below",
        "#    (kept for this browser tab only), then",
        "#    re-fetch the schema: Shift-Ctrl-R, or the",
        "#    arrows at the bottom left.",
      ]
    : ["# 1. Open mode (no API keys): no key is needed."];
  const defaultQuery = [
    "# swarm-context: AI-agent swarms' shared state.",
    "#",
    ...key,
    "# 2. Put the cursor in an operation and run it:",
    "#    Ctrl-Enter, or the run button.",
    "# Docs (top left) and Ctrl-Space know the schema.",
    "",
    "# A swarm's context: its versioned JSON document",
    '# and budget. Replace "my-swarm" with your id.',
    "query Context {",
    '  context(id: "my-swarm") {',
    "    id",
    "    version",
    "    updatedAt",
    "    updatedBy",
    "    document",
    "    budget {",
    "      available { kind amount }",
    "    }",
    "  }",
    "}",
    "",
    "# Its changes, live: writes, allocations, locks.",
    "# Leave it running and change the swarm (an",
    "# agent, another tab) to see them arrive.",
    "subscription Changes {",
    '  contextChanges(contextIds: ["my-swarm"]) {',
    "    changes { seq version kind paths actor at }",
    "  }",
    "}",
    "",
  ].join("\n");
  const defaultHeaders = settings.keyed
    ? [
        "{",
        "  // Your key in place of <key>, and remove",
        '  // the "//". Kept for this browser tab only.',
        '  // "authorization": "Bearer <key>"',
        "}",
      ].join("\n")
    : "{}";
  return {
    title: "swarm-context",
    endpoint: settings.endpoint,
    defaultQuery,
    defaultHeaders,
    // The Headers tab opens first where a key is needed.
    defaultEditorToolsVisibility: settings.keyed ? "headers" : true,
    // Kept in the storage the start script gives: the browser tab's, like the console's key.
    shouldPersistHeaders: true,
    subscriptionsProtocol: "SSE",
  };
}

/** The script that starts GraphiQL: a file of its own, since the page's CSP allows no inline script. */
function startScript(options: GraphiQLOptions, workers: Readonly<Record<string, string>>): string {
  return `// Starts GraphiQL (src/server/graphiql.ts); runs before the GraphiQL bundle, which reads MonacoEnvironment.
(() => {
  const workers = ${JSON.stringify(workers)};
  self.MonacoEnvironment = {
    globalAPI: false,
    getWorkerUrl: (_moduleId, label) => workers[label] ?? workers.editorWorkerService,
  };
  // Tabs and headers (the key) are kept for this browser tab only, like the console's key.
  const options = { ...${JSON.stringify(options)}, storage: window.sessionStorage };
  document.addEventListener("DOMContentLoaded", () => YogaGraphiQL.renderYogaGraphiQL(document.getElementById("root"), options));
})();
`;
}

function pageHtml(assets: Assets, start: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>swarm-context GraphiQL</title>
${assets.favicon ? `<link rel="icon" href="${assets.favicon}">\n` : ""}<link rel="stylesheet" href="${assets.css}">
<script src="${start}" defer></script>
<script src="${assets.js}" defer></script>
</head>
<body id="body" class="no-focus-outline">
<noscript>GraphiQL needs JavaScript.</noscript>
<div id="root"></div>
</body>
</html>
`;
}

/**
 * GraphiQL, served by the server alone (no CDN): a small page at the GraphQL endpoint for
 * browsers (a GET accepting text/html, as yoga decides), which loads GraphiQL's stylesheet,
 * bundle, Monaco workers and start-up script from /graphiql/<content hash>.<ext> (immutable,
 * compressed). Nothing is loaded until the first such request.
 */
export class GraphiQL {
  private files: Promise<{ page: StaticFiles; assets: StaticFiles }> | undefined;

  constructor(private readonly settings: GraphiqlSettings) {}

  /** Whether the request is GraphiQL's: its page, or one of its files. */
  handles(req: IncomingMessage, path: string): boolean {
    if (path.startsWith(FILES)) return true;
    const page = path === this.settings.endpoint || path === `${this.settings.endpoint}/`;
    return page && req.method === "GET" && String(req.headers.accept ?? "").includes("text/html");
  }

  /** Answers a request that handles() took: the file, or 404 NOT_FOUND. Throws if GraphiQL's module cannot be loaded. */
  async serve(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const { page, assets } = await this.load();
    if (page.has(path)) return page.serve(req, res, path);
    if (assets.has(path)) return assets.serve(req, res, path);
    jsonError(res, 404, `no GraphiQL file ${path}`, { code: "NOT_FOUND" });
  }

  private load(): Promise<{ page: StaticFiles; assets: StaticFiles }> {
    if (!this.files) {
      this.files = loadAssets().then((assets) => {
        const files = new Map<string, StaticEntry>();
        const start = hashed(files, "js", startScript(graphiqlOptions(this.settings), assets.workers));
        const page: StaticEntry = { load: () => pageHtml(assets, start), type: "text/html; charset=utf-8", caching: "revalidate", csp: GRAPHIQL_CSP };
        // At the endpoint, and with a trailing slash as yoga's GraphiQL was.
        files.set(this.settings.endpoint, page);
        files.set(`${this.settings.endpoint}/`, page);
        return { page: new StaticFiles(files), assets: assets.files };
      });
      this.files.catch(() => (this.files = undefined));
    }
    return this.files;
  }
}
