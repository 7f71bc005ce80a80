// The fan-out ceiling of this machine: no GraphQL, no Redis, one pre-serialized message per update written to every subscriber's socket over graphql-transport-ws. What neither feed server can beat with the same client; prints its URL on stdout.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";

/** Per context id: its version and its subscriptions (a socket and the subscription's id on it; a socket may hold many). */
const contexts = new Map<string, { version: number; subscribers: Set<{ socket: WebSocket; id: string }> }>();
const contextOf = (id: string) => {
  let context = contexts.get(id);
  if (!context) contexts.set(id, (context = { version: 0, subscribers: new Set() }));
  return context;
};

/** Answers exactly the requests bench/fanout.ts sends: introspection of patchContext, createContext, patchContext. */
const server = createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const { query, variables } = JSON.parse(body) as { query: string; variables: { id: string } };
    let data: unknown;
    if (query.includes("__type")) {
      data = { __type: { fields: [{ name: "patchContext", args: [{ name: "patch", type: { kind: "SCALAR", name: "JSON", ofType: null } }] }] } };
    } else {
      const context = contextOf(variables.id);
      context.version++;
      if (query.includes("createContext")) {
        data = { createContext: { version: context.version } };
      } else {
        const change = { contextId: variables.id, seq: context.version, version: context.version, kind: "UPDATED", paths: ["/blackboard/n"], at: new Date().toISOString() };
        const payload = JSON.stringify({ data: { contextChanges: { changes: [change] } } });
        for (const { socket, id } of context.subscribers) socket.send(`{"id":${JSON.stringify(id)},"type":"next","payload":${payload}}`);
        data = { patchContext: { version: context.version } };
      }
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data }));
  });
});

new WebSocketServer({ server, path: "/graphql" }).on("connection", (socket) => {
  /** This socket's subscriptions, each in its context's set. */
  const mine: { subscribers: Set<{ socket: WebSocket; id: string }>; subscription: { socket: WebSocket; id: string } }[] = [];
  socket.once("close", () => {
    for (const { subscribers, subscription } of mine) subscribers.delete(subscription);
  });
  socket.on("message", (raw) => {
    const message = JSON.parse(String(raw)) as { type: string; id?: string; payload?: { variables: { id: string } } };
    if (message.type === "connection_init") socket.send('{"type":"connection_ack"}');
    if (message.type === "subscribe") {
      const { subscribers } = contextOf(message.payload!.variables.id);
      const subscription = { socket, id: message.id! };
      subscribers.add(subscription);
      mine.push({ subscribers, subscription });
    }
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(`http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`);
});
