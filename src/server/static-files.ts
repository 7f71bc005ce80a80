import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, relative, sep } from "node:path";
import { promisify } from "node:util";
import { brotliCompress, constants as zlib, gzip } from "node:zlib";

const brotli = promisify(brotliCompress);
const gzipped = promisify(gzip);

/** How a file may be cached: revalidated each time (ETag), or kept for a year (its name holds its hash). */
export type Caching = "revalidate" | "immutable";

/** One file the server serves: its bytes come from `load`, read once, on its first request. */
export interface StaticEntry {
  readonly load: () => Buffer | string;
  /** Content type; by default from the name's extension. */
  readonly type?: string;
  readonly caching: Caching;
  /** The page's Content-Security-Policy (HTML pages). */
  readonly csp?: string;
}

interface Prepared {
  readonly type: string;
  readonly etag: string;
  readonly identity: Buffer;
  readonly br: Buffer;
  readonly gzip: Buffer;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/** Below this many bytes a file is sent as it is: compressing it saves less than its headers. */
const COMPRESS_FROM_BYTES = 512;

/** The content type of a file name, by its extension. */
export function contentType(name: string): string {
  return TYPES[extname(name)] ?? "application/octet-stream";
}

/** Every file under `dir` (recursively), by its path relative to `dir` with "/" separators. */
export function listFiles(dir: string): string[] {
  const files: string[] = [];
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.push(relative(dir, path).split(sep).join("/"));
    }
  };
  walk(dir);
  return files;
}

/** The first 16 base64url characters of the content's SHA-256: for ETags and hashed names. */
export function contentHash(bytes: Buffer | string): string {
  return createHash("sha256").update(bytes).digest("base64url").slice(0, 16);
}

/**
 * Static files by URL path, served with an ETag (a matching If-None-Match gets 304), compressed
 * with brotli or gzip as the client accepts (each compressed once, on the file's first request),
 * and cached by the browser as `caching` says.
 */
export class StaticFiles {
  private readonly prepared = new Map<string, Promise<Prepared>>();

  constructor(private readonly entries: ReadonlyMap<string, StaticEntry>) {}

  /** Whether `path` is one of the files. */
  has(path: string): boolean {
    return this.entries.has(path);
  }

  /**
   * Answers a GET or HEAD of `path` (one of the files; see has), or 405 for any other method.
   * Throws if the file cannot be read.
   */
  async serve(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const entry = this.entries.get(path);
    if (!entry) throw new Error(`no static file ${path}`);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return void res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("GET or HEAD only\n");
    }
    let prepared = this.prepared.get(path);
    if (!prepared) {
      prepared = prepare(entry, path);
      // A failed read is retried by the next request rather than kept.
      prepared.catch(() => this.prepared.delete(path));
      this.prepared.set(path, prepared);
    }
    const file = await prepared;
    const headers: Record<string, string> = {
      "content-type": file.type,
      etag: file.etag,
      vary: "accept-encoding",
      "cache-control": entry.caching === "immutable" ? "public, max-age=31536000, immutable" : "no-cache",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    };
    if (entry.csp) headers["content-security-policy"] = entry.csp;
    if (ifNoneMatch(req.headers["if-none-match"], file.etag)) return void res.writeHead(304, headers).end();
    const accepted = String(req.headers["accept-encoding"] ?? "");
    const encoding = file.br !== file.identity && accepts(accepted, "br") ? "br" : file.gzip !== file.identity && accepts(accepted, "gzip") ? "gzip" : undefined;
    const body = encoding === "br" ? file.br : encoding === "gzip" ? file.gzip : file.identity;
    if (encoding) headers["content-encoding"] = encoding;
    headers["content-length"] = String(body.length);
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : body);
  }
}

async function prepare(entry: StaticEntry, path: string): Promise<Prepared> {
  const loaded = entry.load();
  const identity = typeof loaded === "string" ? Buffer.from(loaded, "utf8") : loaded;
  const type = entry.type ?? contentType(path);
  const compressible = identity.length >= COMPRESS_FROM_BYTES && !type.startsWith("image/png");
  const [br, gz] = compressible
    ? await Promise.all([
        brotli(identity, { params: { [zlib.BROTLI_PARAM_QUALITY]: 9, [zlib.BROTLI_PARAM_SIZE_HINT]: identity.length } }),
        gzipped(identity, { level: 9 }),
      ])
    : [identity, identity];
  return { type, etag: `"${contentHash(identity)}"`, identity, br: br.length < identity.length ? br : identity, gzip: gz.length < identity.length ? gz : identity };
}

/** Whether an If-None-Match header names `etag` (or is `*`). */
function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(",").some((tag) => {
    const t = tag.trim();
    return t === "*" || t === etag || t === `W/${etag}`;
  });
}

/** Whether an Accept-Encoding header accepts `coding` (named with a q above 0). */
function accepts(header: string, coding: string): boolean {
  return header.split(",").some((part) => {
    const [name, ...params] = part.trim().split(";");
    if (name!.trim().toLowerCase() !== coding) return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

/** Reads a file as it is on disk. */
export function fileLoader(path: string): () => Buffer {
  return () => readFileSync(path);
}
