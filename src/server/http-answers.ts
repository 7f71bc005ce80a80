import type { IncomingMessage, ServerResponse } from "node:http";
import { finished, type Duplex } from "node:stream";
import { refusalBody } from "../errors.js";

/** A JSON answer outside GraphQL (the operations endpoints). */
export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify(body));
}

/** A refusal answered outside GraphQL (refusalBody). */
export function jsonError(res: ServerResponse, status: number, message: string, extensions: Record<string, unknown>): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" }).end(refusalBody(message, extensions));
}

/**
 * How much of a refused request's unread body the server reads and discards after answering, in
 * bytes, and for how long at most, in ms, before it closes the connection. Closing while the client
 * still sends resets the connection, and the client then often fails (EPIPE) before it reads the
 * answer; reading on lets it finish sending and read it, as nginx's lingering close does. A body
 * past either bound has the connection cut: reading it all would let a client keep the server busy.
 */
export const REFUSED_BODY_DRAIN_BYTES = 16 * 1024 * 1024;
export const REFUSED_BODY_DRAIN_MS = 5_000;

/**
 * Answers a request with a refusal before its body is read, then reads and discards the body
 * (within REFUSED_BODY_DRAIN_BYTES and REFUSED_BODY_DRAIN_MS) and closes the connection.
 */
export function refuseUnread(req: IncomingMessage, res: ServerResponse, status: number, message: string, extensions: Record<string, unknown>): void {
  const body = refusalBody(message, extensions);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body), connection: "close" });
  // The answer is whole (content-length) but not ended: ending it closes the connection at once.
  res.write(body);
  let drained = 0;
  let done = false;
  const close = (cut: boolean) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    res.end();
    if (cut) req.socket.destroy();
  };
  const timer = setTimeout(() => close(true), REFUSED_BODY_DRAIN_MS);
  req.on("data", (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > REFUSED_BODY_DRAIN_BYTES) close(true);
  });
  finished(req, () => close(false));
}

/**
 * Answers a request Node could not parse (headers over 16 KB, say), which Node would answer with
 * a bare status, with a coded error as for every other refusal, and closes the connection.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) return void socket.destroy();
  const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
  const body = tooLarge
    ? refusalBody("request headers are too large", { code: "LIMIT_EXCEEDED", limit: "headerBytes" })
    : refusalBody("malformed HTTP request", { code: "VALIDATION_FAILED" });
  socket.end(
    `HTTP/1.1 ${tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request"}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
