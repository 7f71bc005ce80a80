// Proves GraphiQL comes from the server alone: a small page with a strict CSP at /graphql for browsers, every file it loads (workers too) served by the server, compressed, immutable and revalidated by ETag; its first tab is valid against the schema; JSON clients of /graphql are unchanged.
import { request } from "node:http";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { parse, validate } from "graphql";
import { describe, expect, test } from "vitest";
import { schema } from "../../schema/index.js";
import { GRAPHIQL_CSP, graphiqlOptions } from "../../src/server/graphiql.js";
import { useTestServer } from "../helpers/app.js";
import { testKeys } from "../helpers/keys.js";

const keys = testKeys();
const server = useTestServer({ keys: keys.ring });

interface Raw {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The body as sent (still compressed). */
  readonly body: Buffer;
}

/** A GET of `path` over plain node:http, which (unlike fetch) leaves the body as it was sent. */
function get(path: string, headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, server.url), { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

const HTML = { accept: "text/html,application/xhtml+xml,*/*;q=0.8" };

/** The page's files (src and href) and the Monaco workers its start script names. */
async function referencedFiles(): Promise<{ page: string; files: string[]; start: string; workers: string[] }> {
  const page = (await get("/graphql", HTML)).body.toString("utf8");
  const files = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  const start = files.find((file) => file.endsWith(".js"))!;
  const script = (await get(start)).body.toString("utf8");
  const workers = Object.values(JSON.parse(/const workers = (\{[^}]*\});/.exec(script)![1]!) as Record<string, string>);
  return { page, files, start, workers };
}

describe("the page", () => {
  test("a browser's GET of /graphql, without a key: a small HTML page with a strict CSP and no inline script", async () => {
    const res = await get("/graphql", HTML);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["content-security-policy"]).toBe(GRAPHIQL_CSP);
    expect(GRAPHIQL_CSP).toMatch(/(^|; )script-src 'self';/);
    expect(GRAPHIQL_CSP).toMatch(/(^|; )connect-src 'self'(;|$)/);
    expect(GRAPHIQL_CSP).toMatch(/(^|; )worker-src 'self';/);
    expect(res.headers["cache-control"]).toBe("no-cache");
    expect(res.body.length).toBeLessThan(2_000);
    const html = res.body.toString("utf8");
    expect(html.match(/<script/g)).toHaveLength(2);
    expect(html.match(/<script src="\/graphiql\/[\w-]+\.js" defer><\/script>/g)).toHaveLength(2);
    expect(html).not.toMatch(/ style=|https?:|data:/);
  });

  test.each([`/graphql?query=${encodeURIComponent("{ health { ok } }")}`, "/graphql/"])("at %s (the query in the URL, as GraphiQL keeps it; a trailing slash): the page too", async (path) => {
    const res = await get(path, HTML);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
  });

  test("a second request with its ETag: 304, no body", async () => {
    const first = await get("/graphql", HTML);
    const again = await get("/graphql", { ...HTML, "if-none-match": String(first.headers.etag) });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });
});

describe("the files", () => {
  test("every file the page and its start script name comes from the server, immutable, compressed as accepted, 304 with its ETag", async () => {
    const { files, workers } = await referencedFiles();
    // A stylesheet, a favicon, the start script and the GraphiQL bundle; three Monaco workers.
    expect(files).toHaveLength(4);
    expect(workers).toHaveLength(3);
    for (const path of [...files, ...workers]) {
      expect(path, "a file of the server's own").toMatch(/^\/graphiql\/[\w-]{16}\.(js|css|ico)$/);
      const plain = await get(path);
      expect(plain.status, path).toBe(200);
      expect(plain.headers["cache-control"], path).toBe("public, max-age=31536000, immutable");
      expect(plain.headers["content-encoding"], path).toBeUndefined();
      expect(plain.headers["content-type"], path).toMatch(path.endsWith(".js") ? /^text\/javascript/ : path.endsWith(".css") ? /^text\/css/ : /^image\//);
      if (path.endsWith(".ico")) continue;
      const br = await get(path, { "accept-encoding": "gzip, deflate, br" });
      expect(br.headers["content-encoding"], path).toBe("br");
      expect(brotliDecompressSync(br.body).equals(plain.body), path).toBe(true);
      const gzip = await get(path, { "accept-encoding": "gzip" });
      expect(gzip.headers["content-encoding"], path).toBe("gzip");
      expect(gunzipSync(gzip.body).equals(plain.body), path).toBe(true);
      const again = await get(path, { "if-none-match": String(plain.headers.etag) });
      expect(again.status, path).toBe(304);
    }
  });

  test("the start script sets Monaco's workers to those files and starts GraphiQL, all from the server", async () => {
    const { start } = await referencedFiles();
    const script = (await get(start)).body.toString("utf8");
    expect(script).toContain("getWorkerUrl");
    expect(script).toContain("YogaGraphiQL.renderYogaGraphiQL(");
    expect(script).not.toMatch(/https?:\/\//);
  });

  test("a file the server does not have: 404 NOT_FOUND", async () => {
    const res = await get("/graphiql/AAAAAAAAAAAAAAAA.js");
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body.toString("utf8")).errors[0].extensions.code).toBe("NOT_FOUND");
  });
});

describe("the first tab", () => {
  test.each([true, false])("its operations are valid against the schema (keys: %s), with the key's hint in the Headers tab", (keyed) => {
    const options = graphiqlOptions({ endpoint: "/graphql", keyed });
    const document = parse(options.defaultQuery!);
    expect(validate(schema, document)).toEqual([]);
    expect(document.definitions.map((d) => ("operation" in d ? d.operation : d.kind))).toEqual(["query", "subscription"]);
    expect(options.subscriptionsProtocol).toBe("SSE");
    if (keyed) expect(options.defaultHeaders).toContain('"authorization": "Bearer <key>"');
    else expect(options.defaultHeaders).toBe("{}");
  });
});

describe("JSON clients of /graphql", () => {
  const authorization = keys.agent.authorization;

  test("POST: as before", async () => {
    const res = await fetch(server.url, { method: "POST", headers: { authorization, "content-type": "application/json" }, body: JSON.stringify({ query: "{ me { name } }" }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { me: { name: keys.agent.name } } });
  });

  test.each(["application/json", "application/graphql-response+json", "*/*"])("GET ?query= with accept %s: as before", async (accept) => {
    const res = await fetch(`${server.url}?query=${encodeURIComponent("{ me { role } }")}`, { headers: { authorization, accept } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/json/);
    expect(await res.json()).toEqual({ data: { me: { role: "AGENT" } } });
  });
});
