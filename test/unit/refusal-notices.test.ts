// Proves the refusal notices' fan-out without Redis: a notice reaches the subscribers of its context only, a slow subscriber's buffer keeps the newest notices and the next one delivered says how many were dropped, and a shutdown ends each subscriber after what it holds.
import { expect, test } from "vitest";
import type { Redis } from "ioredis";
import { AppError } from "../../src/errors.js";
import { BUFFER_NOTICES, RefusalNotices, type LedgerRefusal, type RefusalNotice } from "../../src/feed/refusal-notices.js";

const faults: unknown[] = [];
// receive() and subscribe() never touch Redis; publish() is proven against a real one (ledger-refusals.test.ts).
const hub = () => new RefusalNotices(undefined as unknown as Redis, "test:refusals", (...fault) => faults.push(fault));

const notice = (contextId: string, n: number): RefusalNotice => ({
  contextId,
  at: new Date(n).toISOString(),
  actor: "agent-1",
  operation: "allocate",
  code: "INSUFFICIENT_RESOURCES",
  message: `refusal ${n}`,
  allocationId: null,
  parentId: null,
  requested: [{ kind: "credits", amount: n }],
  available: [{ kind: "credits", amount: 0 }],
});
const message = (contextId: string, n: number) => `${contextId} ${JSON.stringify(notice(contextId, n))}`;

async function take(queue: AsyncIterator<LedgerRefusal | AppError>, count: number): Promise<(LedgerRefusal | AppError)[]> {
  const taken = [];
  for (let i = 0; i < count; i++) taken.push((await queue.next()).value as LedgerRefusal | AppError);
  return taken;
}

test("a notice goes to its context's subscribers only, parsed once", async () => {
  const notices = hub();
  const [a1, a2, b] = [notices.subscribe("a"), notices.subscribe("a"), notices.subscribe("b")];
  expect(notices.subscriberCount).toBe(3);
  notices.receive(message("a", 1));
  notices.receive(message("c", 2));
  notices.receive(message("b", 3));
  const [[fromA1], [fromA2], [fromB]] = await Promise.all([take(a1, 1), take(a2, 1), take(b, 1)]);
  expect(fromA1).toEqual({ ...notice("a", 1), dropped: 0 });
  expect(fromA2).toBe(fromA1);
  expect(fromB).toEqual({ ...notice("b", 3), dropped: 0 });
  await a1.return!();
  expect(notices.subscriberCount).toBe(2);
  expect(faults).toEqual([]);
});

test("a subscriber that does not take keeps the newest notices; the next one says how many were dropped before it", async () => {
  const notices = hub();
  const slow = notices.subscribe("a");
  for (let n = 1; n <= BUFFER_NOTICES + 5; n++) notices.receive(message("a", n));
  const taken = (await take(slow, BUFFER_NOTICES)) as LedgerRefusal[];
  expect(taken.map((t) => [t.message, t.dropped])).toEqual(
    Array.from({ length: BUFFER_NOTICES }, (_, i) => [`refusal ${i + 6}`, i === 0 ? 5 : 0]),
  );
  notices.receive(message("a", 1000));
  expect(((await slow.next()).value as LedgerRefusal).dropped).toBe(0);
});

test("a shutdown ends each subscriber with UNAVAILABLE after what it holds, and refuses new ones", async () => {
  const notices = hub();
  const [holding, waiting] = [notices.subscribe("a"), notices.subscribe("b")];
  notices.receive(message("a", 1));
  const next = waiting.next();
  notices.endSubscribers();
  expect(((await next).value as AppError).code).toBe("UNAVAILABLE");
  expect(await waiting.next()).toEqual({ value: undefined, done: true });
  const [first, last] = await take(holding, 2);
  expect((first as LedgerRefusal).message).toBe("refusal 1");
  expect((last as AppError).code).toBe("UNAVAILABLE");
  expect(await holding.next()).toEqual({ value: undefined, done: true });
  expect(notices.subscriberCount).toBe(0);
  expect(() => notices.subscribe("a")).toThrow(AppError);
});
