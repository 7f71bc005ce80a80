import { startTcpProxy } from "./tcp-proxy.js";

export interface ReplyDroppingProxy {
  /** `redis://127.0.0.1:<port>` of the proxy. */
  readonly url: string;
  /** The proxy's port on 127.0.0.1, for a target other than Redis (an HTTP server, say). */
  readonly port: number;
  /**
   * Arms the proxy: the next chunk the target sends that contains `marker` is not forwarded, and
   * both sides of that connection are cut, as when a network fault loses a reply. Resolves
   * once that has happened.
   */
  dropNextReplyContaining(marker: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of a real Redis (or any TCP server on 127.0.0.1: an HTTP server too) that
 * can lose one reply after the target has executed the command, so that a client's resend after
 * reconnecting can be observed against real state.
 */
export async function startReplyDroppingProxy(targetPort: number): Promise<ReplyDroppingProxy> {
  let armed: { marker: string; dropped: () => void } | null = null;
  const proxy = await startTcpProxy(targetPort, (client, upstream) => {
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      if (armed && chunk.includes(armed.marker)) {
        const { dropped } = armed;
        armed = null;
        client.destroy();
        upstream.destroy();
        dropped();
        return;
      }
      client.write(chunk);
    });
  });
  return {
    url: `redis://127.0.0.1:${proxy.port}`,
    port: proxy.port,
    dropNextReplyContaining: (marker) => new Promise((resolve) => (armed = { marker, dropped: resolve })),
    close: () => proxy.close(),
  };
}
