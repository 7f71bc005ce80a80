import { backoffMs, sleep, type RetryOptions } from "./backoff.js";
import { errorOf, SwarmError, TRANSIENT_CODES } from "./errors.js";
import { documents, type Operations } from "./operations.js";

export type OperationName = keyof Operations;
export type Variables<N extends OperationName> = Operations[N]["variables"];
export type Result<N extends OperationName> = Operations[N]["result"];

/**
 * The server's endpoints, tried in turn: a request that fails on one (network error, timeout,
 * UNAVAILABLE) moves every later request to the next.
 */
export class Endpoints {
  private index = 0;

  constructor(readonly urls: readonly string[]) {
    if (urls.length === 0) throw new SwarmError("VALIDATION_FAILED", "connect: `url` names no endpoint", { path: "url" });
  }

  current(): string {
    return this.urls[this.index]!;
  }

  /** `url` failed: move on, unless another request moved on already. */
  failed(url: string): void {
    if (this.current() === url) this.index = (this.index + 1) % this.urls.length;
  }
}

/** GraphQL over HTTP POST, with the client's key, retries and endpoint rotation. */
export class HttpTransport {
  constructor(
    private readonly endpoints: Endpoints,
    private readonly headers: Readonly<Record<string, string>>,
    private readonly retry: RetryOptions,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Sends operation `name`; resends it on network errors, timeouts, HTTP 5xx, UNAVAILABLE and
   * RATE_LIMITED, after a backoff, up to retry.attempts times. Safe for writes only because each
   * carries one opId across all of its attempts. Throws the server's refusal as a SwarmError,
   * or UNAVAILABLE (cause: the last failure) when the attempts are spent.
   */
  async request<N extends OperationName>(name: N, variables: Variables<N>): Promise<Result<N>> {
    const body = JSON.stringify({ query: documents[name], variables, operationName: name });
    let last: SwarmError | undefined;
    for (let attempt = 0; attempt < this.retry.attempts; attempt++) {
      // RATE_LIMITED says when the key may send again: no sooner than that.
      if (attempt > 0) await sleep(Math.max(backoffMs(this.retry, attempt - 1), Number(last!.extensions.retryAfterMs ?? 0)));
      const url = this.endpoints.current();
      try {
        return await this.send<N>(url, body);
      } catch (err) {
        const error = err instanceof SwarmError ? err : new SwarmError("UNAVAILABLE", `${url}: ${networkMessage(err)}`, {}, { cause: err });
        if (!TRANSIENT_CODES.has(error.code)) throw error;
        if (error.code === "UNAVAILABLE") this.endpoints.failed(url);
        last = error;
      }
    }
    throw new SwarmError(last!.code, `${name} failed ${this.retry.attempts} times; the last: ${last!.message}`, last!.extensions, { cause: last });
  }

  private async send<N extends OperationName>(url: string, body: string): Promise<Result<N>> {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/graphql-response+json, application/json", ...this.headers },
      body,
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    let parsed: { data?: Result<N> | null; errors?: { message?: string; extensions?: Record<string, unknown> }[] };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      // Not GraphQL: a proxy's or a dying server's page.
      const code = res.status >= 500 ? "UNAVAILABLE" : "INTERNAL_SERVER_ERROR";
      throw new SwarmError(code, `${url}: HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`, { status: res.status });
    }
    if (parsed.errors?.length) throw errorOf(parsed.errors[0]!);
    if (!parsed.data) throw new SwarmError(res.status >= 500 ? "UNAVAILABLE" : "INTERNAL_SERVER_ERROR", `${url}: HTTP ${res.status} without data`, { status: res.status });
    return parsed.data;
  }
}

/** fetch's "fetch failed" with what failed (ECONNREFUSED, a reset, a timeout). */
function networkMessage(err: unknown): string {
  const { message, cause } = err as { message?: string; cause?: { message?: string; code?: string } };
  return [message, cause?.code ?? cause?.message].filter(Boolean).join(": ");
}
