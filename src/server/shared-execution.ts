import { createSourceEventStream, execute, GraphQLError, type DocumentNode, type ExecutionArgs, type ExecutionResult } from "graphql";
import { isAsyncIterable, type Plugin } from "graphql-yoga";

type Results = Map<string, Promise<ExecutionResult> | ExecutionResult>;
/** Turns an error that is not a deliberate refusal into INTERNAL_SERVER_ERROR (app.ts). */
export type MaskError = (error: unknown, message: string) => Error;
export type Subscribe = (args: ExecutionArgs) => Promise<AsyncIterable<ExecutionResult> | ExecutionResult>;

const UNEXPECTED = "Unexpected error.";

const serialized = new WeakMap<object, string>();

/** The JSON of a value, computed once per object however many subscribers are sent it. */
export function serializedJson(value: object): string {
  let json = serialized.get(value);
  if (json === undefined) serialized.set(value, (json = JSON.stringify(value)));
  return json;
}

type Run = (args: ExecutionArgs, key: string, event: unknown) => Promise<ExecutionResult> | ExecutionResult;

/**
 * The events of `source`, each executed for one subscription: what yoga's mapAsyncIterator does
 * (a failed execution ends the source, then rejects; return and throw end the source), as one
 * object instead of a closure per method and state, since every idle subscription holds one.
 */
class ExecutedEvents implements AsyncIterableIterator<ExecutionResult> {
  constructor(
    private readonly source: AsyncIterator<unknown>,
    private readonly args: ExecutionArgs,
    private readonly key: string,
    private readonly run: Run,
  ) {}

  async next(): Promise<IteratorResult<ExecutionResult>> {
    const event = await this.source.next();
    if (event.done) return { value: undefined, done: true };
    try {
      return { value: await this.run(this.args, this.key, event.value), done: false };
    } catch (err) {
      await this.source.return?.();
      throw err;
    }
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    await this.source.return?.();
    return { value: undefined, done: true };
  }

  async throw(err: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.source.return?.();
    throw err;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * A subscribe function for the whole schema; each event is executed with the context
 * `eventContext` makes of the subscription's. Subscription events that many subscribers receive
 * as the same object (a feed batch shared by a pipeline's members) are executed, and their errors
 * masked, once per distinct operation (document and variables); the result object is shared
 * instead of made per subscriber, and serialized once: over SSE through the result's
 * `stringify`, over WebSocket in ws-transport.ts. A delivery then costs each subscriber its send.
 */
export function sharedSubscribe(maskError: MaskError, eventContext: (context: unknown) => unknown): Subscribe {
  const mask = (result: ExecutionResult): ExecutionResult =>
    result.errors ? { ...result, errors: result.errors.map((e) => maskError(e, UNEXPECTED) as GraphQLError) } : result;
  const executed = new WeakMap<object, WeakMap<DocumentNode, Results>>();
  const run = async (args: ExecutionArgs, event: unknown) => {
    const result = mask(await execute({ ...args, contextValue: eventContext(args.contextValue), rootValue: event }));
    // yoga's SSE writer serializes a result with its `stringify` if it has one: the cached JSON
    // (graphql-yoga 5.24.1 does; test/unit/library-contracts.test.ts fails if an upgrade does not).
    Object.defineProperty(result, "stringify", { value: serializedJson });
    return result;
  };
  /** `key` names the operation within its document: its name and variables. */
  const executeShared = (args: ExecutionArgs, key: string, event: unknown) => {
    if (typeof event !== "object" || event === null) return run(args, event);
    let byDocument = executed.get(event);
    if (!byDocument) executed.set(event, (byDocument = new WeakMap()));
    let results = byDocument.get(args.document);
    if (!results) byDocument.set(args.document, (results = new Map()));
    let result = results.get(key);
    if (!result) results.set(key, (result = run(args, event)));
    return result;
  };
  return async (args) => {
    const source = await createSourceEventStream(args);
    if (!isAsyncIterable(source)) return mask(source as ExecutionResult);
    const key = `${args.operationName ?? ""}\n${JSON.stringify(args.variableValues ?? {})}`;
    return new ExecutedEvents((source as AsyncIterable<unknown>)[Symbol.asyncIterator](), args, key, executeShared);
  };
}

/** The yoga plugin that makes SSE (and any yoga-served) subscriptions use `subscribe`. */
export function useSubscribe(subscribe: Subscribe): Plugin {
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(subscribe as never);
    },
  };
}
