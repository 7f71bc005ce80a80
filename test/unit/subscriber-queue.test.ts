// Proves a subscriber queue's accounting: the changes and bytes it holds (queued, and the value being written until the subscriber asks again), when it last asked (on a fake clock), room announced on every take, and that end() and return() drop what is queued and close it once.
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { SubscriberQueue } from "../../src/feed/subscriber-queue.js";

interface Value {
  readonly changes: number;
  readonly bytes: number;
}

let closes = 0;
let takes = 0;
const queue = () => {
  closes = 0;
  takes = 0;
  return new SubscriberQueue<Value>(
    (v) => v.changes,
    (v) => v.bytes,
    { queueClosed: () => closes++, queueTaken: () => takes++ },
  );
};
const value = (changes: number, bytes: number): Value => ({ changes, bytes });

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

test("counts what waits in changes and bytes; the value taken last is held until the subscriber asks again", async () => {
  const q = queue();
  q.push(value(2, 100));
  q.push(value(3, 50));
  expect(q.queuedWeight).toBe(5);
  expect(q.heldBytes).toBe(150);
  expect(q.holdsMoreThanOne).toBe(true);

  expect((await q.next()).value).toEqual(value(2, 100));
  // Being written: its bytes still count, its changes no longer wait.
  expect(q.queuedWeight).toBe(3);
  expect(q.heldBytes).toBe(150);
  expect(q.holdsMoreThanOne).toBe(true);

  expect((await q.next()).value).toEqual(value(3, 50));
  expect(q.queuedWeight).toBe(0);
  expect(q.heldBytes).toBe(50);
  expect(q.holdsMoreThanOne).toBe(false);

  // Asking again means the last one was handed over: nothing is held while it waits.
  const waiting = q.next();
  expect(q.heldBytes).toBe(0);
  q.push(value(1, 70));
  expect((await waiting).value).toEqual(value(1, 70));
  expect(q.queuedWeight).toBe(0);
  expect(q.heldBytes).toBe(70);
});

test("lastTakeAt is when the subscriber last asked, whether or not a value was there", async () => {
  const q = queue();
  const created = performance.now();
  expect(q.lastTakeAt).toBe(created);
  q.push(value(1, 1));
  vi.advanceTimersByTime(700);
  expect(q.lastTakeAt).toBe(created);
  await q.next();
  expect(q.lastTakeAt).toBe(created + 700);
  vi.advanceTimersByTime(300);
  void q.next();
  expect(q.lastTakeAt).toBe(created + 1000);
});

test("every take, and every wait for a value, tells the producer that room appeared", async () => {
  const q = queue();
  q.push(value(1, 1));
  q.push(value(1, 1));
  await q.next();
  await q.next();
  expect(takes).toBe(2);
  void q.next();
  expect(takes).toBe(3);
});

test("end() drops what is queued, delivers its last values, then ends; it closes once", async () => {
  const q = queue();
  q.push(value(5, 500));
  q.end([value(0, 0), value(0, 1)]);
  expect(closes).toBe(1);
  expect(q.undelivered).toEqual([value(0, 0), value(0, 1)]);
  q.push(value(9, 9));
  q.end([value(9, 9)]);
  expect(closes).toBe(1);
  expect((await q.next()).value).toEqual(value(0, 0));
  expect((await q.next()).value).toEqual(value(0, 1));
  expect(await q.next()).toEqual({ value: undefined, done: true });
});

test("end() with nothing left to deliver ends a waiting subscriber", async () => {
  const q = queue();
  const waiting = q.next();
  q.end([]);
  expect(await waiting).toEqual({ value: undefined, done: true });
});

test("return() (the client went away) drops everything, ends a waiting next() and closes once", async () => {
  const q = queue();
  q.push(value(2, 20));
  await q.next();
  const waiting = q.next();
  await q.return();
  expect(await waiting).toEqual({ value: undefined, done: true });
  expect([q.queuedWeight, q.heldBytes, q.undelivered.length]).toEqual([0, 0, 0]);
  await q.return();
  expect(closes).toBe(1);
});
