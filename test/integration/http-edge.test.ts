// Proves the HTTP edge: every client of an oversized body gets the coded 413 (the rest of the body is read and discarded up to a bound, then the connection closes), a request that is not well-formed GraphQL-over-HTTP gets 400, and a page of another origin (or, in open mode, a host name that is not loopback) is refused over HTTP, SSE and WebSocket before anything runs.
import { randomUUID } from "node:crypto";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect, type Socket } from "node:net";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { REFUSED_BODY_DRAIN_BYTES } from "../../src/server/http-answers.js";
import { loadConfig } from "../../src/config.js";
import { startTestServer, type TestServer } from "../helpers/app.js";
import { testKeys } from "../helpers/keys.js";
import { spawnServer, type ServerProcess } from "../helpers/server-process.js";

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

/** One request over node:http, which (unlike fetch) sends any Host and Origin it is given. */
function send(target: string, method: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  const url = new URL(target);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path: url.pathname + url.search, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** The extensions.code of an answer's first error; undefined when the answer is not JSON. */
function code(text: string): unknown {
  try {
    return (JSON.parse(text) as { errors?: { extensions?: { code?: unknown } }[] }).errors?.[0]?.extensions?.code;
  } catch {
    return undefined;
  }
}

/** What a raw TCP client saw: the bytes the server answered and how many body bytes it got to write. */
interface RawExchange {
  readonly answer: string;
  readonly written: number;
  /** Why writing stopped: "closed" (the server closed, no error), or the write error's code. */
  readonly ended: string;
}

/**
 * Opens a TCP connection, sends `head`, then body pieces from `next` (null: stop writing and
 * wait) whenever the socket can take more, or once per `tickMs` when given; resolves with what
 * came back once the server has closed the connection.
 */
function rawExchange(url: URL, head: string, next: (written: number) => Buffer | null, tickMs?: number): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket: Socket = connect(Number(url.port), url.hostname);
    const received: Buffer[] = [];
    let written = 0;
    let ended = "closed";
    let timer: NodeJS.Timeout | undefined;
    const pump = () => {
      for (let piece = next(written); piece !== null && !socket.destroyed; piece = next(written)) {
        written += piece.length;
        if (!socket.write(piece) || tickMs !== undefined) return;
      }
    };
    socket.on("connect", () => {
      socket.write(head);
      if (tickMs === undefined) pump();
      else timer = setInterval(pump, tickMs);
    });
    socket.on("drain", () => tickMs === undefined && pump());
    socket.on("data", (data: Buffer) => received.push(data));
    socket.on("error", (err: NodeJS.ErrnoException) => (ended = err.code ?? err.message));
    socket.on("close", () => {
      clearInterval(timer);
      resolve({ answer: Buffer.concat(received).toString("utf8"), written, ended });
    });
  });
}

/** The status and code of a raw HTTP answer. */
function parseAnswer(raw: string): { status: number; code: unknown } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
  // The JSON body, whether framed by content-length or chunked.
  const json = raw.slice(raw.indexOf("{"), raw.lastIndexOf("}") + 1);
  return { status, code: json ? code(json) : undefined };
}

describe("an oversized body gets its coded 413", () => {
  // A server process of its own: a client in the server's process shares its event loop, which
  // hides the race between the server closing and the client still sending.
  let spawned: ServerProcess;
  let url: URL;
  const { maxRequestBytes } = loadConfig([], {});
  beforeAll(async () => {
    spawned = spawnServer(["--port", "0", "--key-prefix", `t-${randomUUID()}`], { ...process.env, REDIS_URL: inject("redisUrl") });
    url = new URL(await spawned.url);
  });
  afterAll(async () => {
    spawned?.child.kill("SIGTERM");
    await spawned?.exited;
  });
  const MB5 = 5 * 1024 * 1024;
  const bigBody = () => JSON.stringify({ query: "mutation M($d: JSON!) { createContext(id: \"too-big\", document: $d) { id } }", variables: { d: { pad: "x".repeat(MB5) } } });

  test("20 of 20 fetch POSTs of a 5 MB body with content-length", async () => {
    const body = bigBody();
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i++) {
      const outcome = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body }).then(
        async (res) => `${res.status} ${code(await res.text())}`,
        (err: Error) => `failed: ${(err.cause as Error | undefined)?.message ?? err.message}`,
      );
      outcomes.push(outcome);
    }
    expect(outcomes).toEqual(Array(20).fill("413 LIMIT_EXCEEDED"));
  });

  test("20 of 20 fetch POSTs of a 5 MB chunked body", async () => {
    const body = Buffer.from(bigBody());
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i++) {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let at = 0; at < body.length; at += 64 * 1024) controller.enqueue(body.subarray(at, at + 64 * 1024));
          controller.close();
        },
      });
      const outcome = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: stream, duplex: "half" } as RequestInit).then(
        async (res) => `${res.status} ${code(await res.text())}`,
        (err: Error) => `failed: ${(err.cause as Error | undefined)?.message ?? err.message}`,
      );
      outcomes.push(outcome);
    }
    expect(outcomes).toEqual(Array(20).fill("413 LIMIT_EXCEEDED"));
  });

  test("a client that reads only after sending its whole 6 MB body still gets the 413 (content-length and chunked)", async () => {
    const size = 6 * 1024 * 1024;
    const piece = Buffer.alloc(64 * 1024, "x");
    const sized = await rawExchange(
      url,
      `POST /graphql HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\ncontent-length: ${size}\r\n\r\n`,
      (written) => (written < size ? piece : null),
    );
    const chunk = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")]);
    let terminated = false;
    const chunked = await rawExchange(
      url,
      `POST /graphql HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`,
      (written) => (written < size ? chunk : terminated ? null : ((terminated = true), Buffer.from("0\r\n\r\n"))),
    );
    for (const exchange of [sized, chunked]) {
      expect(exchange.ended).toBe("closed");
      expect(parseAnswer(exchange.answer)).toEqual({ status: 413, code: "LIMIT_EXCEEDED" });
    }
  });

  test("a body trickled after the answer is read for a bounded time, then the connection is closed (content-length and chunked)", async () => {
    const piece = Buffer.alloc(1024, "x");
    const over = Buffer.alloc(maxRequestBytes + 1, "x");
    const [sized, chunked] = await Promise.all([
      rawExchange(url, `POST /graphql HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\ncontent-length: ${1024 ** 3}\r\n\r\n`, () => piece, 20),
      rawExchange(
        url,
        `POST /graphql HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n${over.length.toString(16)}\r\n${over}\r\n`,
        () => Buffer.from(`400\r\n${piece}\r\n`),
        20,
      ),
    ]);
    for (const exchange of [sized, chunked]) expect(parseAnswer(exchange.answer)).toEqual({ status: 413, code: "LIMIT_EXCEEDED" });
  });

  test("a body sent as fast as the server takes it is read up to the bound, then the connection is closed", async () => {
    const piece = Buffer.alloc(256 * 1024, "x");
    const flood = await rawExchange(url, `POST /graphql HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\ncontent-length: ${1024 ** 4}\r\n\r\n`, () => piece);
    expect(parseAnswer(flood.answer)).toEqual({ status: 413, code: "LIMIT_EXCEEDED" });
    // What the kernel buffers on both ends comes on top of what the server reads.
    expect(flood.written).toBeLessThan(REFUSED_BODY_DRAIN_BYTES + 32 * 1024 * 1024);
  });

  test("Expect: 100-continue with an oversized content-length gets the 413 instead of 100 Continue", async () => {
    const answer = await new Promise<{ status: number; code: unknown; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = httpRequest(
        { host: url.hostname, port: url.port, method: "POST", path: "/graphql", agent: false, headers: { "content-type": "application/json", "content-length": String(1024 ** 3), expect: "100-continue" } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            resolve({ status: res.statusCode ?? 0, code: code(Buffer.concat(chunks).toString("utf8")), continued });
            req.destroy();
          });
        },
      );
      req.on("continue", () => (continued = true));
      req.on("error", reject);
      req.flushHeaders();
    });
    expect(answer).toEqual({ status: 413, code: "LIMIT_EXCEEDED", continued: false });
  });
});

describe("a request that is not well-formed GraphQL-over-HTTP gets 400", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });
  const ACCEPTS = ["application/json", "application/graphql-response+json"];

  const post = async (body: string, accept: string) => {
    const res = await fetch(server.url, { method: "POST", headers: { "content-type": "application/json", accept }, body });
    return `${res.status} ${code(await res.text())}`;
  };
  const get = async (params: Record<string, string>, accept: string) => {
    const res = await fetch(`${server.url}?${new URLSearchParams(params).toString()}`, { headers: { accept } });
    return `${res.status} ${code(await res.text())}`;
  };

  test.each(ACCEPTS)("POST bodies that are not GraphQL parameters, accepting %s", async (accept) => {
    const bodies = [
      '{"query": "{ health ',
      "",
      "{",
      "nonsense",
      "null",
      "123",
      '"{ health { ok } }"',
      "[1]",
      '{"variables": {}}',
      '{"query": null}',
      '{"query": 1}',
      '{"query": {"kind": "Document"}}',
      '{"qeury": "{ __typename }"}',
      '{"query": "{ __typename }", "variables": "{}"}',
      '{"query": "{ __typename }", "variables": [7]}',
      '{"query": "{ __typename }", "operationName": {}}',
      '{"query": "{ __typename }", "operationName": 5}',
      '{"query": "{ __typename }", "extensions": "x"}',
      '{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}}',
    ];
    const answers = await Promise.all(bodies.map((body) => post(body, accept)));
    expect(Object.fromEntries(bodies.map((body, i) => [body, answers[i]]))).toEqual(Object.fromEntries(bodies.map((body) => [body, "400 VALIDATION_FAILED"])));
  });

  test.each(ACCEPTS)("GET query strings that are not GraphQL parameters, accepting %s", async (accept) => {
    const cases: Record<string, string>[] = [
      {},
      { operationName: "Q" },
      { query: "{ __typename }", variables: "{not json" },
      { query: "{ __typename }", variables: "[7]" },
      { query: "{ __typename }", extensions: "[" },
    ];
    const answers = await Promise.all(cases.map((params) => get(params, accept)));
    expect(answers).toEqual(cases.map(() => "400 VALIDATION_FAILED"));
  });

  test("a well-formed request whose document fails to parse or validate: 200 for application/json, 400 for application/graphql-response+json (the spec's statuses)", async () => {
    const documents = ["{ health ", "{ nope }", `{ ${Array.from({ length: 40 }, (_, i) => `a${i}: __typename`).join(" ")} }`];
    const byAccept = async (accept: string) => [
      ...(await Promise.all(documents.map((query) => post(JSON.stringify({ query }), accept)))),
      ...(await Promise.all(documents.map((query) => get({ query }, accept)))),
    ];
    expect(await byAccept("application/json")).toEqual(Array(6).fill(expect.stringMatching(/^200 (VALIDATION_FAILED|LIMIT_EXCEEDED)$/)));
    expect(await byAccept("application/graphql-response+json")).toEqual(Array(6).fill(expect.stringMatching(/^400 (VALIDATION_FAILED|LIMIT_EXCEEDED)$/)));
  });
});

describe("a page of another origin, and in open mode a host name that is not loopback, is refused before anything runs", () => {
  const EVIL = "https://evil.example";
  const CONSOLE = "https://console.example";
  const keys = testKeys();
  let open: TestServer;
  let console_: TestServer;
  let keyed: TestServer;
  beforeAll(async () => {
    [open, console_, keyed] = await Promise.all([startTestServer(), startTestServer({ allowedOrigins: [CONSOLE] }), startTestServer({ keys: keys.ring })]);
  });
  afterAll(async () => {
    await Promise.all([open?.close(), console_?.close(), keyed?.close()]);
  });

  const create = (id: string) => JSON.stringify({ query: `mutation { createContext(id: "${id}", document: {}) { id } }` });
  /** Whether context `id` exists, asked without an Origin. */
  const exists = async (server: TestServer, id: string, headers: Record<string, string> = {}) => {
    const answer = await send(server.url, "POST", { "content-type": "application/json", ...headers }, JSON.stringify({ query: `{ context(id: "${id}") { id } }` }));
    return (JSON.parse(answer.text) as { data: { context: unknown } }).data.context !== null;
  };
  /** A JSON POST over HTTP. */
  const post = (server: TestServer, body: string, headers: Record<string, string>) => send(server.url, "POST", { "content-type": "application/json", ...headers }, body);
  /** The same over SSE (yoga answers a POST that accepts text/event-stream with a stream of results). */
  const postSse = (server: TestServer, body: string, headers: Record<string, string>) => post(server, body, { accept: "text/event-stream", ...headers });

  /**
   * Runs `query` over graphql-transport-ws with the given upgrade headers: the status of the
   * upgrade (101 when accepted), the code of a refusal's body, and the operation's result.
   */
  function overWs(server: TestServer, query: string, options: { origin?: string; host?: string; authorization?: string } = {}): Promise<{ status: number; code?: unknown; result?: unknown }> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(server.url.replace(/^http/, "ws"), "graphql-transport-ws", { origin: options.origin, headers: options.host ? { host: options.host } : {} });
      socket.on("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, code: code(Buffer.concat(chunks).toString("utf8")) }));
      });
      socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init", payload: options.authorization ? { authorization: options.authorization } : {} })));
      socket.on("message", (data) => {
        const message = JSON.parse(String(data)) as { type: string; payload?: unknown };
        if (message.type === "connection_ack") socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query } }));
        if (message.type === "next" || message.type === "error") {
          resolve({ status: 101, result: message.payload });
          socket.close();
        }
      });
      socket.on("error", (err) => !socket.listenerCount("unexpected-response") && reject(err));
    });
  }

  test("a CORS preflight from another origin is refused, with no CORS approval", async () => {
    const answer = await send(open.url, "OPTIONS", { origin: EVIL, "access-control-request-method": "POST", "access-control-request-headers": "content-type" });
    expect([answer.status, code(answer.text)]).toEqual([403, "FORBIDDEN"]);
    expect(answer.headers["access-control-allow-origin"]).toBeUndefined();
    expect(answer.headers["access-control-allow-credentials"]).toBeUndefined();
  });

  test("HTTP, SSE and WebSocket requests from another origin are refused with 403 FORBIDDEN and run nothing", async () => {
    const http = await post(open, create("evil-http"), { origin: EVIL });
    const sse = await postSse(open, create("evil-sse"), { origin: EVIL });
    const ws = await overWs(open, `mutation { createContext(id: "evil-ws", document: {}) { id } }`, { origin: EVIL });
    expect([http.status, code(http.text), http.headers["access-control-allow-origin"]]).toEqual([403, "FORBIDDEN", undefined]);
    expect([sse.status, code(sse.text)]).toEqual([403, "FORBIDDEN"]);
    expect(ws).toEqual({ status: 403, code: "FORBIDDEN" });
    expect(await Promise.all(["evil-http", "evil-sse", "evil-ws"].map((id) => exists(open, id)))).toEqual([false, false, false]);
  });

  test("the server's own origin, and requests without an Origin, are served over HTTP, SSE and WebSocket", async () => {
    const own = new URL(open.url).origin;
    const http = await post(open, create("same-http"), { origin: own });
    const sse = await postSse(open, create("same-sse"), { origin: own });
    const ws = await overWs(open, `mutation { createContext(id: "same-ws", document: {}) { id } }`, { origin: own });
    const bare = await overWs(open, `mutation { createContext(id: "bare-ws", document: {}) { id } }`);
    expect([http.status, JSON.parse(http.text)]).toEqual([200, { data: { createContext: { id: "same-http" } } }]);
    expect([sse.status, sse.text]).toEqual([200, expect.stringContaining('"createContext":{"id":"same-sse"}')]);
    expect(ws).toEqual({ status: 101, result: { data: { createContext: { id: "same-ws" } } } });
    expect(bare).toEqual({ status: 101, result: { data: { createContext: { id: "bare-ws" } } } });
  });

  test("an origin in allowedOrigins gets CORS approval (without credentials) and is served; others are still refused", async () => {
    const preflight = await send(console_.url, "OPTIONS", { origin: CONSOLE, "access-control-request-method": "POST", "access-control-request-headers": "content-type, authorization" });
    expect(preflight.status).toBe(204);
    expect(preflight.headers["access-control-allow-origin"]).toBe(CONSOLE);
    expect(preflight.headers["access-control-allow-methods"]).toContain("POST");
    expect(preflight.headers["access-control-allow-headers"]).toContain("authorization");
    expect(preflight.headers["access-control-allow-credentials"]).toBeUndefined();
    const http = await post(console_, create("console-http"), { origin: CONSOLE });
    expect([http.status, http.headers["access-control-allow-origin"], JSON.parse(http.text)]).toEqual([200, CONSOLE, { data: { createContext: { id: "console-http" } } }]);
    expect(await overWs(console_, `mutation { createContext(id: "console-ws", document: {}) { id } }`, { origin: CONSOLE })).toEqual({
      status: 101,
      result: { data: { createContext: { id: "console-ws" } } },
    });
    const evil = await send(console_.url, "OPTIONS", { origin: EVIL, "access-control-request-method": "POST" });
    expect([evil.status, evil.headers["access-control-allow-origin"]]).toEqual([403, undefined]);
    expect(await overWs(console_, "{ __typename }", { origin: EVIL })).toEqual({ status: 403, code: "FORBIDDEN" });
  });

  test("in open mode, a Host that is not a loopback name (DNS rebinding) is refused over HTTP, SSE and WebSocket; loopback names with any port are served", async () => {
    const port = new URL(open.url).port;
    const rebound = `evil.example:${port}`;
    const http = await post(open, create("rebound-http"), { host: rebound });
    const sse = await postSse(open, create("rebound-sse"), { host: rebound });
    const ws = await overWs(open, `mutation { createContext(id: "rebound-ws", document: {}) { id } }`, { host: rebound, origin: `http://${rebound}` });
    expect([http.status, code(http.text)]).toEqual([403, "FORBIDDEN"]);
    expect([sse.status, code(sse.text)]).toEqual([403, "FORBIDDEN"]);
    expect(ws).toEqual({ status: 403, code: "FORBIDDEN" });
    expect(await Promise.all(["rebound-http", "rebound-sse", "rebound-ws"].map((id) => exists(open, id)))).toEqual([false, false, false]);
    for (const host of [`localhost:${port}`, "localhost", `127.0.0.1:${port}`, "127.8.9.10", `[::1]:${port}`, "LocalHost"]) {
      const answer = await post(open, JSON.stringify({ query: "{ __typename }" }), { host });
      expect([host, answer.status]).toEqual([host, 200]);
    }
  });

  test("with API keys any Host is served, and a page of that host is its own origin (a TLS proxy in front included)", async () => {
    const headers = { host: "swarm.example.com", authorization: keys.admin.authorization };
    const plain = await post(keyed, create("keyed-host"), headers);
    const proxied = await post(keyed, JSON.stringify({ query: "{ __typename }" }), { ...headers, origin: "https://swarm.example.com" });
    const other = await post(keyed, JSON.stringify({ query: "{ __typename }" }), { ...headers, origin: EVIL });
    expect([plain.status, proxied.status, other.status]).toEqual([200, 200, 403]);
    expect(await exists(keyed, "keyed-host", { authorization: keys.admin.authorization })).toBe(true);
  });
});
