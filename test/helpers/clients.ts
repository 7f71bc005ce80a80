import { afterAll } from "vitest";
import { connect, type Client, type ConnectOptions } from "swarm-context/client";

/**
 * Clients of swarm-context/client for a test file, closed after its tests: the returned function
 * connects to `url` with `defaults` and `options`.
 */
export function useClients(defaults: Partial<ConnectOptions> = {}): (url: ConnectOptions["url"], options?: Partial<ConnectOptions>) => Client {
  const open: Client[] = [];
  afterAll(() => Promise.all(open.map((client) => client.close())));
  return (url, options = {}) => {
    const client = connect({ ...defaults, ...options, url });
    open.push(client);
    return client;
  };
}
