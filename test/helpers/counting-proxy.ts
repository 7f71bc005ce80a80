import { startTcpProxy } from "./tcp-proxy.js";

export interface CountingProxy {
  /** `http://127.0.0.1:<port>`: the proxy's origin, to open in the browser. */
  readonly origin: string;
  /** Bytes the server sent (status line, headers and body, as on the wire), by request ("GET /path"), since the last reset. */
  readonly bytes: Map<string, number>;
  /** Forgets the counts. */
  reset(): void;
  close(): Promise<void>;
}

const REQUEST_LINE = /^([A-Z]+) (\S+) HTTP\/1\.1\r\n/;

/**
 * A TCP proxy in front of an HTTP/1.1 server that counts what each answer takes on the wire,
 * workers' and cached files' included, which Chromium's own figures leave out. A browser sends
 * one request at a time per connection (no pipelining), so the bytes a connection carries back
 * belong to the last request it carried out. The query string is not part of the key.
 */
export async function startCountingProxy(serverUrl: string): Promise<CountingProxy> {
  const target = new URL(serverUrl);
  const bytes = new Map<string, number>();
  const proxy = await startTcpProxy(
    Number(target.port),
    (client, upstream) => {
      let current = "(none)";
      client.on("data", (chunk: Buffer) => {
        const line = REQUEST_LINE.exec(chunk.subarray(0, 2048).toString("latin1"));
        if (line) current = `${line[1]} ${line[2]!.split("?")[0]}`;
        upstream.write(chunk);
      });
      upstream.on("data", (chunk: Buffer) => {
        bytes.set(current, (bytes.get(current) ?? 0) + chunk.length);
        client.write(chunk);
      });
    },
    target.hostname,
  );
  return {
    origin: `http://127.0.0.1:${proxy.port}`,
    bytes,
    reset: () => bytes.clear(),
    close: () => proxy.close(),
  };
}
