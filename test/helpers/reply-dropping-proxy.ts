import { createServer, connect, type Socket } from "node:net";

export interface ReplyDroppingProxy {
  /** `redis://127.0.0.1:<port>` of the proxy. */
  readonly url: string;
  /**
   * Arms the proxy: the next chunk Redis sends that contains `marker` is not forwarded, and
   * both sides of that connection are cut, as when a network fault loses a reply. Resolves
   * once that has happened.
   */
  dropNextReplyContaining(marker: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of a real Redis that can lose one reply after Redis has executed the
 * command, so that a client's resend after reconnecting can be observed against real state.
 */
export async function startReplyDroppingProxy(redisPort: number): Promise<ReplyDroppingProxy> {
  const sockets = new Set<Socket>();
  let armed: { marker: string; dropped: () => void } | null = null;
  const server = createServer((client) => {
    const upstream = connect(redisPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
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
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${port}`,
    dropNextReplyContaining: (marker) => new Promise((resolve) => (armed = { marker, dropped: resolve })),
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
