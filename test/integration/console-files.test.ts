// Proves the console's files are served by the server itself: every file of console/ and the
// libraries it imports from node_modules, byte for byte, compressed as the client accepts, with an
// ETag that turns a repeat load into 304s, a strict Content-Security-Policy on the page, and
// nothing else under /console/.
import { readFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { describe, expect, test } from "vitest";
import { consoleFiles } from "../../src/server/console-files.js";
import { listFiles } from "../../src/server/static-files.js";
import { useTestServer } from "../helpers/app.js";
import { testKeys } from "../helpers/keys.js";

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The body as sent (still compressed). */
  readonly body: Buffer;
}

function get(base: string, path: string, headers: Record<string, string> = {}, method = "GET"): Promise<Answer> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

function decoded(answer: Answer): Buffer {
  const encoding = answer.headers["content-encoding"];
  return encoding === "br" ? brotliDecompressSync(answer.body) : encoding === "gzip" ? gunzipSync(answer.body) : answer.body;
}

const CONSOLE_DIR = join(process.cwd(), "console");

describe.each([
  ["open mode", {}],
  ["a keyed server, without a key", { keys: testKeys().ring }],
])("in %s", (_, overrides) => {
  const server = useTestServer(overrides);

  test("every file of console/ is served at /console/<path>, byte for byte, with its type", async () => {
    for (const name of listFiles(CONSOLE_DIR)) {
      const answer = await get(server.url, `/console/${name}`, { "accept-encoding": "br, gzip" });
      expect(answer.status, name).toBe(200);
      expect(decoded(answer).equals(readFileSync(join(CONSOLE_DIR, name))), name).toBe(true);
      const type = String(answer.headers["content-type"]);
      if (name.endsWith(".js")) expect(type, name).toMatch(/^text\/javascript/);
      if (name.endsWith(".css")) expect(type, name).toMatch(/^text\/css/);
    }
  });

  test("the page at /console/ (and /console redirects there), with a CSP that allows only the server's own origin", async () => {
    const redirect = await get(server.url, "/console");
    expect([redirect.status, redirect.headers.location]).toEqual([308, "/console/"]);
    const page = await get(server.url, "/console/");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(decoded(page).toString()).toContain('<script type="module" src="app.js">');
    const csp = String(page.headers["content-security-policy"]);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:/);
    expect(page.headers["x-content-type-options"]).toBe("nosniff");
  });

  test("the libraries the console imports come from node_modules, and import nothing from elsewhere", async () => {
    const views = await get(server.url, "/console/vendor/htm-preact.js");
    expect(views.status).toBe(200);
    expect(views.body.toString()).toContain("useState");
    const client = await get(server.url, "/console/vendor/graphql-ws/client.js");
    expect(client.status).toBe(200);
    const imports = [...client.body.toString().matchAll(/^\s*(?:import|export)\b[^;'"]*from\s*['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
    expect(imports.length).toBeGreaterThan(0);
    for (const specifier of imports) {
      expect(specifier, "a relative import").toMatch(/^\.\/[\w.-]+\.js$/);
      expect((await get(server.url, `/console/vendor/graphql-ws/${specifier.slice(2)}`)).status, specifier).toBe(200);
    }
  });

  test("compressed as accepted (brotli before gzip), plain otherwise; Vary says so", async () => {
    const plain = await get(server.url, "/console/app.js");
    const br = await get(server.url, "/console/app.js", { "accept-encoding": "gzip, deflate, br" });
    const gz = await get(server.url, "/console/app.js", { "accept-encoding": "gzip" });
    const refused = await get(server.url, "/console/app.js", { "accept-encoding": "br;q=0, gzip;q=0" });
    expect([plain.headers["content-encoding"], br.headers["content-encoding"], gz.headers["content-encoding"], refused.headers["content-encoding"]]).toEqual([
      undefined,
      "br",
      "gzip",
      undefined,
    ]);
    expect(br.body.length).toBeLessThan(plain.body.length / 2);
    expect(decoded(br).equals(plain.body) && decoded(gz).equals(plain.body)).toBe(true);
    expect(br.headers.vary).toBe("accept-encoding");
    expect(Number(br.headers["content-length"])).toBe(br.body.length);
  });

  test("a repeat load with the ETag gets 304 and no body; a changed ETag gets the file", async () => {
    const first = await get(server.url, "/console/style.css", { "accept-encoding": "br" });
    const etag = String(first.headers.etag);
    expect(etag).toMatch(/^"[\w-]{16}"$/);
    expect(first.headers["cache-control"]).toBe("no-cache");
    const again = await get(server.url, "/console/style.css", { "accept-encoding": "br", "if-none-match": etag });
    expect([again.status, again.body.length]).toEqual([304, 0]);
    expect((await get(server.url, "/console/style.css", { "if-none-match": '"something-else"' })).status).toBe(200);
  });

  test("HEAD answers the headers alone; other methods 405; unknown files 404 (no directory listing, no way out of console/)", async () => {
    const head = await get(server.url, "/console/app.js", {}, "HEAD");
    expect([head.status, head.body.length, Number(head.headers["content-length"]) > 0]).toEqual([200, 0, true]);
    expect((await get(server.url, "/console/app.js", {}, "DELETE")).status).toBe(405);
    for (const path of ["/console/nope.js", "/console/views/", "/console/../package.json", "/console/%2e%2e/package.json", "/console/vendor/"]) {
      expect((await get(server.url, path)).status, path).toBe(404);
    }
  });
});

test("a build without the console's directory serves no console file (and the API as ever)", () => {
  expect(consoleFiles(join(CONSOLE_DIR, "no-such-directory")).size).toBe(0);
});

test("the console's list of change kinds is the schema's ChangeKind", async () => {
  const { CHANGE_KINDS } = (await import(pathToFileURL(join(CONSOLE_DIR, "lib", "change-kinds.js")).href)) as { CHANGE_KINDS: string[] };
  const { schema } = await import("../../schema/index.js");
  const kinds = (schema.getType("ChangeKind") as import("graphql").GraphQLEnumType).getValues().map((v) => v.name);
  expect([...CHANGE_KINDS].sort()).toEqual(kinds.sort());
});
