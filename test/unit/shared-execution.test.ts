// Proves shared subscription execution: subscribers of the same operation get the very same result object for a shared event, serialized once (also for yoga's SSE writer), other operations get their own, and unexpected errors are masked while refusals pass.
import { buildSchema, parse, type ExecutionResult } from "graphql";
import { expect, test } from "vitest";
import { AppError, ErrorCode } from "../../src/errors.js";
import { maskError } from "../../src/server/error-masking.js";
import { sharedSubscribe } from "../../src/server/shared-execution.js";

const schema = buildSchema(`
  type Query { unused: Int }
  type Tick { n: Int!, doubled(by: Int!): Int!, broken: Int, refused: Int, response: Int }
  type Subscription { ticks: Tick! }
`);
/** One event object for every subscriber, as a shared feed pipeline hands out. */
const tick = {
  n: 21,
  doubled: ({ by }: { by: number }) => 21 * by,
  broken: () => {
    throw new Error("connection string with a password");
  },
  refused: () => {
    throw new AppError(ErrorCode.NOT_FOUND, "no such thing", { id: "x" });
  },
  response: (_args: unknown, context: { response: number }) => context.response,
};
const event = { ticks: tick };
const rootValue = {
  ticks: async function* () {
    yield event;
  },
};

async function first(document: ReturnType<typeof parse>, variableValues: Record<string, unknown> = {}) {
  const subscribe = sharedSubscribe(maskError, (context) => context);
  const stream = (await subscribe({ schema, document, rootValue, variableValues })) as AsyncIterable<ExecutionResult>;
  for await (const result of stream) return result;
  throw new Error("no event");
}

test("subscribers of the same operation share one result object per event; other variables get their own", async () => {
  const subscribe = sharedSubscribe(maskError, (context) => context);
  const document = parse("subscription($by: Int!) { ticks { n doubled(by: $by) } }");
  const run = async (by: number) => {
    const stream = (await subscribe({ schema, document, rootValue, variableValues: { by } })) as AsyncIterable<ExecutionResult>;
    for await (const result of stream) return result;
    throw new Error("no event");
  };
  const [a, b, c] = await Promise.all([run(2), run(2), run(3)]);
  expect(a).toEqual({ data: { ticks: { n: 21, doubled: 42 } } });
  expect(b).toBe(a);
  expect(c).toEqual({ data: { ticks: { n: 21, doubled: 63 } } });
  expect(c).not.toBe(a);
  // yoga's SSE writer uses a result's own `stringify`: the cached JSON, and not itself serialized.
  const stringify = (a as { stringify?: (value: unknown) => string }).stringify!;
  expect(stringify(a)).toBe(JSON.stringify(a));
  expect(JSON.stringify(a)).toBe('{"data":{"ticks":{"n":21,"doubled":42}}}');
});

test("unexpected errors are masked as INTERNAL_SERVER_ERROR; refusals keep their code", async () => {
  const broken = await first(parse("subscription { ticks { n broken } }"));
  expect(broken.errors?.map((e) => [e.message, e.extensions?.code])).toEqual([["Unexpected error.", "INTERNAL_SERVER_ERROR"]]);
  expect(JSON.stringify(broken)).not.toContain("password");
  const refused = await first(parse("subscription { ticks { n refused } }"));
  expect(refused.errors?.map((e) => [e.message, e.extensions?.code])).toEqual([["no such thing", "NOT_FOUND"]]);
});

test("each event is executed with the context eventContext makes of the subscription's", async () => {
  const made: unknown[] = [];
  const subscribe = sharedSubscribe(maskError, (context) => {
    made.push(context);
    return { response: made.length };
  });
  const twoEvents = { ticks: async function* () { yield { ticks: tick }; yield { ticks: tick }; } };
  const subscription = { response: 0 };
  const stream = (await subscribe({ schema, document: parse("subscription { ticks { response } }"), rootValue: twoEvents, contextValue: subscription })) as AsyncIterable<ExecutionResult>;
  const results: ExecutionResult[] = [];
  for await (const result of stream) results.push(result);
  expect(results.map((r) => r.data)).toEqual([{ ticks: { response: 1 } }, { ticks: { response: 2 } }]);
  expect(made).toEqual([subscription, subscription]);
});
