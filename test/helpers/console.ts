import type { Page } from "playwright-core";
import { expect } from "vitest";

/** What a GraphQL POST answered. */
export interface GraphQLAnswer<T = Record<string, unknown>> {
  readonly data?: T | null;
  readonly errors?: readonly { message: string; extensions?: Record<string, unknown> }[];
}

/** POSTs `query` to the GraphQL endpoint `url`, with `key` as a bearer token (null: none). */
export async function graphqlAs<T = Record<string, unknown>>(url: string, key: string | null, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLAnswer<T>> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as GraphQLAnswer<T>;
}

/** As graphqlAs, but throws unless the answer has data and no error. */
export async function dataAs<T = Record<string, unknown>>(url: string, key: string | null, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const answer = await graphqlAs<T>(url, key, query, variables);
  if (answer.errors?.length || !answer.data) throw new Error(`GraphQL errors: ${JSON.stringify(answer.errors)}`);
  return answer.data;
}

/**
 * Creates contexts `ids` with `document(id)` through the API: createContext mutations, 25 aliased
 * to a request (under the alias bound), 8 requests at a time.
 */
export async function seedContexts(url: string, key: string | null, ids: readonly string[], document: (id: string) => unknown): Promise<void> {
  const requests: string[][] = [];
  for (let i = 0; i < ids.length; i += 25) requests.push(ids.slice(i, i + 25));
  const send = async (chunk: readonly string[]) => {
    const fields = chunk.map((id, i) => `c${i}: createContext(id: ${JSON.stringify(id)}, document: $d${i}) { id }`).join(" ");
    const vars = chunk.map((_, i) => `$d${i}: JSON!`).join(", ");
    await dataAs(url, key, `mutation(${vars}) { ${fields} }`, Object.fromEntries(chunk.map((id, i) => [`d${i}`, document(id)])));
  };
  for (let i = 0; i < requests.length; i += 8) await Promise.all(requests.slice(i, i + 8).map(send));
}

/**
 * Waits until the server serves exactly `count` feed subscriptions (its /metrics gauge): a
 * console's live view is subscribed, so a write made from now on reaches it.
 */
export async function untilSubscriptions(url: string, adminKey: string | null, count: number): Promise<void> {
  const metrics = new URL("/metrics", url).href;
  await poll(async () => {
    const text = await (await fetch(metrics, { headers: adminKey ? { authorization: `Bearer ${adminKey}` } : {} })).text();
    return Number(/^swarm_active_subscriptions (\S+)$/m.exec(text)?.[1]);
  }).toBe(count);
}

/** Makes `page` open the console signed in with `key`, as the sign-in form leaves a tab (the key in sessionStorage). */
export async function signInWith(page: Page, key: string): Promise<void> {
  await page.addInitScript((k) => sessionStorage.setItem("swarm-context-key", k), key);
}

/** expect.poll with room for a busy machine: 10 s rather than vitest's 1 s. */
export function poll<T>(check: () => Promise<T> | T) {
  return expect.poll(check, { timeout: 10_000 });
}
