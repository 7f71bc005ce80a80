import { connect, createServer, type Socket } from "node:net";

export interface TcpProxy {
  /** The proxy's port, on 127.0.0.1. */
  readonly port: number;
  /** Cuts every connection and stops listening. */
  close(): Promise<void>;
}

/**
 * A TCP proxy on a free loopback port in front of 127.0.0.1:`targetPort` (or `targetHost`): for
 * each connection it opens one upstream and hands both sockets to `relay`, which forwards (and
 * may watch or drop) what each side sends. Either side closing closes the other.
 */
export async function startTcpProxy(targetPort: number, relay: (client: Socket, upstream: Socket) => void, targetHost = "127.0.0.1"): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
    relay(client, upstream);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
