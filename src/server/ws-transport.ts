import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { getOperationAST, GraphQLError, type ExecutionArgs, type ExecutionResult } from "graphql";
import { CloseCode, handleProtocols, makeServer, type Context } from "graphql-ws";
import { isAsyncIterable, type YogaServerInstance } from "graphql-yoga";
import { WebSocketServer, type WebSocket } from "ws";
import type { RequestContext } from "../../resolvers/request-context.js";
import type { Principal } from "../security/auth.js";
import { maskError } from "./error-masking.js";
import { AppError, ErrorCode, refusalBody, withProblems } from "../errors.js";
import type { ReportFault } from "../observability/faults.js";
import type { Gate } from "../security/gate.js";
import type { Observability } from "./observability-plugin.js";
import { operationLabel } from "./operation-info.js";
import { refusal } from "./security-plugin.js";
import { serializedJson, type Subscribe } from "./shared-execution.js";

export interface WsTransportOptions {
  /** How often each socket is pinged, in ms; one that has not answered the previous ping is cut. */
  readonly keepAliveMs: number;
  /** Largest WebSocket message a client may send, in bytes; a larger one closes the connection with 1009. */
  readonly maxRequestBytes: number;
  /** Operations one connection may have running at once; more are refused with LIMIT_EXCEEDED. */
  readonly maxSubscriptionsPerConnection: number;
  /** Runs subscriptions (shared-execution.ts). */
  readonly subscribe: Subscribe;
  /** Authenticates connections (connectionParams.authorization) and rate-limits operations. */
  readonly gate: Gate;
  /**
   * Why an upgrade may not be served because of where it comes from (its Origin or Host; see
   * request-origin.ts), or undefined: refused with HTTP 403 FORBIDDEN before the connection opens.
   */
  readonly foreign: (request: IncomingMessage) => string | undefined;
  /** Logs and counts operations, and finishes their errors. */
  readonly observability: Observability;
  /** Hears faults of the transport itself and of subscription streams that fail. */
  readonly fault: ReportFault;
}

type Yoga = YogaServerInstance<Record<string, unknown>, RequestContext>;
type Enveloped = ReturnType<Yoga["getEnveloped"]>;
/** What a connection keeps for its life: no more, since every idle subscription holds one. */
interface Extra {
  /** Set once the connection is authenticated. */
  principal?: Principal;
}

/** One operation on a connection, for its log line and metrics. */
interface Operation {
  readonly requestId: string;
  readonly started: number;
  operation: string;
}

/** Stands in for a shared result's JSON while graphql-ws stringifies the message around it. */
const PLACEHOLDER = "__swarm_context_shared_payload__";
const QUOTED_PLACEHOLDER = JSON.stringify(PLACEHOLDER);

/**
 * The socket graphql-ws sees for one connection: an object with methods rather than closures made
 * per connection, since every idle subscription keeps its connection's (and under tsx, which
 * keeps function names, each named closure also gets a property dictionary of its own).
 *
 * Writes go to the connection's TCP socket `tcp` (where ws writes its frames). The first message
 * of a tick is written at once; from the second on they are corked until the tick's work is
 * done, so that the messages of every subscription on this connection that one change wakes (a
 * batch goes to all of them at once) leave in one write instead of one each. A connection with
 * one subscription is written to as before.
 */
class ConnectionSocket {
  readonly protocol: string;
  private sentThisTick = 0;

  constructor(
    private readonly socket: WebSocket,
    private readonly tcp: Duplex,
    /** Splices a shared result's JSON into the message graphql-ws stringified (attachGraphqlWs). */
    private readonly withPayload: (data: string) => string,
    private readonly fault: ReportFault,
  ) {
    this.protocol = socket.protocol;
  }

  /**
   * Resolves once the frame is handed to the kernel: a subscriber that stops reading holds its
   * operation here, and its feed queue fills up to the bound instead of our memory.
   */
  send(data: string): Promise<void> {
    return new Promise<void>((resolve) => {
      const message = this.withPayload(data);
      if (this.socket.readyState !== this.socket.OPEN) return resolve();
      // endTick runs after the promise jobs queued now, where the other subscriptions send.
      if (this.sentThisTick++ === 0) process.nextTick(endTick, this);
      else if (this.sentThisTick === 2) this.tcp.cork();
      this.socket.send(message, () => resolve());
    });
  }

  close(code?: number, reason?: string): void {
    this.socket.close(code, reason);
  }

  onMessage(handle: (data: string) => Promise<void>): void {
    // Not an async function awaiting `handle`: a subscribe message's handling lasts as long as
    // its subscription, and a suspended function here would keep the message's buffer with it.
    this.socket.on("message", (data) => {
      handle(String(data)).catch((err: unknown) => this.failed(err));
    });
  }

  private failed(err: unknown): void {
    this.fault("websocket", "a WebSocket message could not be handled; connection closed", err);
    this.socket.close(CloseCode.InternalServerError, "Internal server error");
  }

  /** The tick's sends are done: what was corked leaves in one write. */
  endTick(): void {
    if (this.sentThisTick > 1) this.tcp.uncork();
    this.sentThisTick = 0;
  }
}

/**
 * `text` as one flat string. A string built by concatenation (randomUUID's, say: 16 pieces) is a
 * tree of its pieces until V8 flattens it, about 30 bytes a node; an operation keeps its request
 * id and label for as long as it runs.
 */
function flat(text: string): string {
  return Buffer.from(text, "utf8").toString("utf8");
}

function endTick(connection: ConnectionSocket): void {
  connection.endTick();
}

/**
 * Serves graphql-ws (the graphql-transport-ws protocol) on `server` at yoga's endpoint, through
 * yoga's envelop (the same schema, context, plugins and error masking as HTTP and SSE).
 *
 * A result object that many subscribers receive (see shared-execution.ts) is serialized once:
 * graphql-ws stringifies each message with our replacer, which puts a placeholder where the
 * payload goes and takes the payload's JSON from the cache per result object; send() then
 * splices that JSON in. Stringify and send run back to back, synchronously, so one slot suffices
 * (graphql-ws 6.0.6 does so; test/unit/library-contracts.test.ts fails if an upgrade does not).
 *
 * Faults: an operation whose stream fails gets INTERNAL_SERVER_ERROR with its request id, never
 * the cause's message, and a message that fails to be handled closes the connection with 1011;
 * either way the cause is reported (options.fault).
 */
export function attachGraphqlWs(server: Server, yoga: Yoga, options: WsTransportOptions): { close(graceMs: number): Promise<void> } {
  let payloadJson: string | null = null;
  function replacer(this: unknown, key: string, value: unknown): unknown {
    if (key !== "payload" || (this as { type?: unknown }).type !== "next" || typeof value !== "object" || value === null) {
      return value;
    }
    payloadJson = serializedJson(value);
    return PLACEHOLDER;
  }
  const withPayload = (data: string): string => {
    if (payloadJson === null) return data;
    // The placeholder, quoted, can only be the payload: the message's other strings come first
    // (id, type), and an id equal to it would appear before the payload, so take the last one.
    const at = data.lastIndexOf(QUOTED_PLACEHOLDER);
    const out = data.slice(0, at) + payloadJson + data.slice(at + QUOTED_PLACEHOLDER.length);
    payloadJson = null;
    return out;
  };

  /** Every open connection's graphql-ws context: what shutting down waits on. */
  const connections = new Set<Context<Record<string, unknown> | undefined, Extra>>();
  const graphqlWs = makeServer<Record<string, unknown> | undefined, Extra>({
    jsonMessageReplacer: replacer,
    // Refusing a connection makes graphql-ws close it with 4403 (Forbidden).
    onConnect: (ctx) => {
      try {
        ctx.extra.principal = options.gate.authenticate(ctx.connectionParams?.authorization);
      } catch (err) {
        if (err instanceof AppError) return false;
        throw err;
      }
      connections.add(ctx);
      return true;
    },
    onClose: (ctx) => {
      connections.delete(ctx);
    },
    execute: (args) => (args.rootValue as Enveloped).execute(args),
    // Subscriptions skip envelop's per-result hooks (a wrapper per subscriber per event, about
    // 15 % of deliveries/s at 1,000 subscribers); `subscribe` masks errors itself, once per result.
    subscribe: (args) => options.subscribe(args),
    onSubscribe: async (ctx, _id, params) => {
      const principal = ctx.extra.principal!;
      const op: Operation = { requestId: flat(observability.requestId(null)), started: performance.now(), operation: "invalid" };
      /** Refuses the operation: graphql-ws sends these errors and completes it. */
      const refuse = (errors: readonly GraphQLError[]) => {
        const finished = observability.finishErrors(errors, principal, op.requestId, false);
        record(op, principal, finished);
        return finished;
      };
      if (Object.keys(ctx.subscriptions).length > options.maxSubscriptionsPerConnection) {
        return refuse([
          new GraphQLError(`at most ${options.maxSubscriptionsPerConnection} operations may run on one connection`, {
            extensions: { code: "LIMIT_EXCEEDED", limit: "operationsPerConnection" },
          }),
        ]);
      }
      try {
        await options.gate.admit(principal);
      } catch (err) {
        if (err instanceof AppError) return refuse([refusal(err)]);
        throw err;
      }
      // Only what our plugins and context read (app.ts): the operation's context lives as long as
      // the subscription, and the upgrade request's headers would live with it.
      const enveloped = yoga.getEnveloped({ params, principal });
      let document;
      try {
        document = enveloped.parse(params.query);
      } catch (err) {
        if (err instanceof GraphQLError) return refuse([err]);
        throw err;
      }
      const errors = enveloped.validate(enveloped.schema, document);
      if (errors.length > 0) return refuse(errors);
      const operation = getOperationAST(document, params.operationName);
      if (!operation) {
        const message = params.operationName ? `no operation named ${params.operationName}` : "name the operation to run (operationName)";
        return refuse([new GraphQLError(message, { extensions: withProblems(message, { code: ErrorCode.VALIDATION_FAILED, path: "operationName" }) })]);
      }
      op.operation = flat(operationLabel(document, params.operationName));
      const args: ExecutionArgs = {
        schema: enveloped.schema,
        document,
        operationName: params.operationName,
        variableValues: params.variables,
        contextValue: await enveloped.contextFactory(),
        // execute (below) finds envelop here; a subscription runs through options.subscribe,
        // which does not, and would keep it (a closure per hook) for as long as it lives.
        rootValue: operation.operation === "subscription" ? undefined : enveloped,
      };
      operations.set(params, op);
      return args;
    },
    // A query or mutation has its result; a subscription has started (or was refused).
    onOperation: async (ctx, _id, params, _args, pending) => {
      const result = await pending;
      const op = operations.get(params)!;
      const errors = isAsyncIterable(result) || !result.errors ? [] : observability.finishErrors(result.errors, ctx.extra.principal, op.requestId, false);
      record(op, ctx.extra.principal, errors);
      return errors.length > 0 ? ({ ...result, errors } as ExecutionResult) : result;
    },
    // The result object itself, not graphql-ws's per-message copy, so the replacer can find it;
    // a result with errors (rare: a refusal ending a subscription, a masked fault) is finished.
    onNext: (ctx, _id, params, _args, result) =>
      result.errors?.length
        ? { ...result, errors: observability.finishErrors(result.errors as GraphQLError[], ctx.extra.principal, operations.get(params)!.requestId, false) }
        : result,
    // The errors an operation ends with: refusals (already finished by onSubscribe), or what a
    // subscription's stream threw, which graphql-ws would send with the cause's message.
    onError: (_ctx, _id, params, errors) =>
      errors.map((error) => {
        const masked = maskError(error, "Unexpected error.") as GraphQLError;
        if (masked.extensions.code !== "INTERNAL_SERVER_ERROR") return masked;
        const requestId = operations.get(params)?.requestId ?? observability.requestId(null);
        options.fault("websocket", "subscription stream failed", masked.originalError ?? error, { requestId });
        return new GraphQLError(masked.message, { extensions: { code: "INTERNAL_SERVER_ERROR", requestId } });
      }),
  });
  const { observability } = options;
  /** By the operation's subscribe payload: graphql-ws hands the same object to every hook. */
  const operations = new WeakMap<object, Operation>();
  /** Logs and counts an operation once it has its result (a subscription: once it started). */
  const record = (op: Operation, principal: Principal | undefined, errors: readonly GraphQLError[]) =>
    observability.record({
      transport: "ws",
      requestId: op.requestId,
      operation: op.operation,
      durationMs: performance.now() - op.started,
      codes: errors.map((e) => String(e.extensions.code)),
      actor: principal?.name,
    });

  const wss = new WebSocketServer({
    server,
    path: yoga.graphqlEndpoint,
    handleProtocols,
    maxPayload: options.maxRequestBytes,
    verifyClient: ({ req }, verified) => {
      const why = options.foreign(req);
      if (why === undefined) return verified(true);
      verified(false, 403, refusalBody(why, { code: ErrorCode.FORBIDDEN }), { "Content-Type": "application/json; charset=utf-8" });
    },
  });
  // One timer pings every socket: one that has not answered the previous sweep's ping is cut.
  const answered = new WeakSet<WebSocket>();
  function pong(this: WebSocket): void {
    answered.add(this);
  }
  function closeOnError(this: WebSocket): void {
    this.close(CloseCode.InternalServerError, "Internal server error");
  }
  const pinger = setInterval(() => {
    for (const socket of wss.clients) {
      if (!answered.has(socket)) {
        socket.terminate();
        continue;
      }
      answered.delete(socket);
      socket.ping();
    }
  }, options.keepAliveMs);
  pinger.unref();
  wss.on("close", () => clearInterval(pinger));
  wss.on("connection", (socket, request) => {
    answered.add(socket);
    socket.on("pong", pong);
    socket.on("error", closeOnError);
    const closed = graphqlWs.opened(new ConnectionSocket(socket, request.socket, withPayload, options.fault), {});
    socket.on("close", (code, reason) => void closed(code, String(reason)));
  });

  return {
    /**
     * Lets the operations running on every connection finish (subscriptions end once the feed
     * has ended them; their last messages go out) for at most `graceMs`, then closes every
     * connection with 1001 (going away).
     */
    close: async (graceMs) => {
      const deadline = performance.now() + graceMs;
      const busy = () => [...connections].some((ctx) => Object.keys(ctx.subscriptions).length > 0);
      while (busy() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      for (const socket of wss.clients) socket.close(1001, "Going away");
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
