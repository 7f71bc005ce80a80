/** What an async iteration has yielded so far, and a way to wait for what it will. */
export interface Collected<T> {
  readonly items: T[];
  /** Resolves once `predicate(items)` holds; rejects if the iteration ends first (with its error, if any). */
  until(predicate: (items: readonly T[]) => boolean, what: string): Promise<void>;
  /** Settles when the iteration ends. */
  readonly done: Promise<void>;
}

/** Iterates `iterable` in the background, keeping every item. */
export function collect<T>(iterable: AsyncIterable<T>): Collected<T> {
  const items: T[] = [];
  const waiters = new Set<() => void>();
  let ended: { error?: unknown } | undefined;
  const done = (async () => {
    try {
      for await (const item of iterable) {
        items.push(item);
        for (const wake of waiters) wake();
      }
      ended = {};
    } catch (error) {
      ended = { error };
    }
    for (const wake of waiters) wake();
  })();
  return {
    items,
    done,
    until: (predicate, what) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (predicate(items)) {
            waiters.delete(check);
            resolve();
          } else if (ended) {
            waiters.delete(check);
            reject(new Error(`the iteration ended before ${what}${ended.error ? `: ${String(ended.error)}` : ""} (${items.length} items)`));
          }
        };
        waiters.add(check);
        check();
      }),
  };
}
