// Proves the HTTP edge: every client of an oversized body gets the coded 413 (the rest of the body is read and discarded up to a bound, then the connection closes), a request that is not well-formed GraphQL-over-HTTP gets 400, and a page of another origin (or, in open mode, a host name that is not loopback) is refused over HTTP, SSE and WebSocket before anything runs.
import { randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { REFUSED_BODY_DRAIN_BYTES } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { startTestServer, type TestServer } from "../helpers/app.js";
import { spawnServer, type ServerProcess } from "../helpers/server-process.js";

/** The extensions.code of an answer's first error. */
function code(text: string): unknown {
  return (JSON.parse(text) as { errors?: { extensions?: { code?: unknown } }[] }).errors?.[0]?.extensions?.code;
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
