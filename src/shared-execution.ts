import { createSourceEventStream, execute, type DocumentNode, type ExecutionArgs, type ExecutionResult } from "graphql";
import { isAsyncIterable, mapAsyncIterator, type Plugin } from "graphql-yoga";

type Results = Map<string, Promise<ExecutionResult> | ExecutionResult>;

/**
 * Subscription events that many subscribers receive as the same object (a feed batch shared by a
 * pipeline's members) are executed once per distinct operation (document and variables) and the
 * result object is shared, instead of once per subscriber. The per-subscriber cost of a delivery
 * is then the send alone; see ws-transport.ts for serializing a shared result once.
 */
const executed = new WeakMap<object, WeakMap<DocumentNode, Results>>();

function executeShared(args: ExecutionArgs, event: unknown): Promise<ExecutionResult> | ExecutionResult {
  if (typeof event !== "object" || event === null) return execute({ ...args, rootValue: event });
  let byDocument = executed.get(event);
  if (!byDocument) executed.set(event, (byDocument = new WeakMap()));
  let results = byDocument.get(args.document);
  if (!results) byDocument.set(args.document, (results = new Map()));
  const key = `${args.operationName ?? ""}\n${JSON.stringify(args.variableValues ?? {})}`;
  let result = results.get(key);
  if (!result) {
    result = execute({ ...args, rootValue: event });
    results.set(key, result);
  }
  return result;
}

async function subscribeShared(args: ExecutionArgs) {
  const source = await createSourceEventStream(args);
  if (!isAsyncIterable(source)) return source;
  return mapAsyncIterator(source as AsyncIterable<unknown>, (event) => executeShared(args, event));
}

/** The yoga plugin that makes every subscription execute shared events once (for SSE and WebSocket). */
export function useSharedSubscriptionExecution(): Plugin {
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(subscribeShared as never);
    },
  };
}
