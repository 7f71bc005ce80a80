import { randomUUID } from "node:crypto";
import { GraphQLError, type DocumentNode, type ExecutionResult } from "graphql";
import { isAsyncIterable, type Plugin } from "graphql-yoga";
import type { Principal } from "../security/auth.js";
import type { Introspection } from "../config.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { operationLabel } from "./operation-info.js";
import { ErrorCode } from "../errors.js";
import { seesSchema, withoutSuggestions } from "./security-plugin.js";

/** A client's own request id is kept when it looks like one; otherwise the server makes one. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

interface RequestInfo {
  readonly id: string;
  readonly started: number;
  operation: string;
  codes: string[];
}

/** Codes sent as they are: API.md's, and the masked fault's. */
const API_CODES = new Set<string>([...Object.values(ErrorCode), "INTERNAL_SERVER_ERROR"]);

/**
 * The code of an error about the request itself (malformed JSON or parameters, a syntax error, a
 * document the schema rejects, variables of the wrong type), which yoga and graphql-js send
 * without a code or with one of their own: every refusal carries one of API.md's codes.
 */
const REQUEST_ERROR = ErrorCode.VALIDATION_FAILED;

/**
 * What the server tells operators and clients about each request, on every transport:
 * - `finishErrors` gives every error a code, hides schema hints from callers that may not see
 *   the schema (seesSchema, under `introspection`), and puts the request id on masked internal errors, whose cause it logs;
 * - `record` writes one JSON log line and the metrics of one finished operation.
 * Over HTTP and SSE, `plugin` does both per request, and answers `x-request-id`.
 */
export class Observability {
  private readonly requests = new WeakMap<Request, RequestInfo>();

  constructor(
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly principalOf: (request: Request) => Principal | undefined,
    private readonly introspection: Introspection,
  ) {}

  /** A new request id, or the client's (`x-request-id`) when it is a sane one. */
  requestId(clientId: string | null | undefined): string {
    return clientId && CLIENT_REQUEST_ID.test(clientId) ? clientId : randomUUID();
  }

  /**
   * The errors as sent: each with one of API.md's codes, hints removed unless `principal` sees
   * the schema, and a masked fault with the request id (its cause goes to the log). Over HTTP
   * (`overHttp`), a refusal keeps status 200 unless it set its own (401, 429...), where yoga
   * would make it 500; yoga takes `http` out of what it sends, and WebSocket errors never have it.
   */
  finishErrors(errors: readonly GraphQLError[], principal: Principal | undefined, requestId: string, overHttp: boolean): GraphQLError[] {
    return errors.map((error) => {
      const { code, originalError: _leak, http, ...extensions } = error.extensions ?? {};
      let sent: string;
      if (code === "INTERNAL_SERVER_ERROR") {
        const cause = error.originalError;
        this.log.error("internal error", { requestId, path: error.path, error: cause?.stack ?? cause?.message ?? error.message });
        sent = code;
        extensions.requestId = requestId;
      } else {
        sent = typeof code === "string" && API_CODES.has(code) ? code : REQUEST_ERROR;
        if (overHttp) extensions.http = http ?? { status: 200 };
      }
      const message = principal && seesSchema(principal, this.introspection) ? error.message : withoutSuggestions(error.message);
      return new GraphQLError(message, {
        nodes: error.nodes,
        source: error.source,
        positions: error.positions,
        path: error.path,
        extensions: { ...extensions, code: sent },
      });
    });
  }

  /** Logs and counts one finished operation. */
  record(fields: {
    transport: "http" | "ws";
    requestId: string;
    operation: string;
    durationMs: number;
    codes: readonly string[];
    actor: string | undefined;
    status?: number;
  }): void {
    this.metrics.operation(fields);
    const level = fields.codes.includes("INTERNAL_SERVER_ERROR") ? "error" : "info";
    this.log[level]("request", { ...fields, durationMs: Math.round(fields.durationMs * 100) / 100 });
  }

  /** Request ids, logs, metrics and error finishing for HTTP and SSE. */
  readonly plugin: Plugin = this.httpPlugin();

  private httpPlugin(): Plugin {
    const label = ({ args }: { args: { contextValue: unknown; document: DocumentNode; operationName?: string | null } }) => {
      const info = this.requests.get((args.contextValue as { request: Request }).request);
      if (info) info.operation = operationLabel(args.document, args.operationName);
    };
    return {
      onRequest: ({ request }) => {
        this.requests.set(request, {
          id: this.requestId(request.headers.get("x-request-id")),
          started: performance.now(),
          operation: "invalid",
          codes: [],
        });
      },
      onExecute: label,
      onSubscribe: label,
      onResultProcess: ({ request, result, setResult }) => {
        const info = this.requests.get(request);
        if (!info || isAsyncIterable(result)) return;
        const principal = this.principalOf(request);
        const finish = (one: ExecutionResult): ExecutionResult => {
          if (!one.errors?.length) return one;
          const errors = this.finishErrors(one.errors as GraphQLError[], principal, info.id, true);
          info.codes.push(...errors.map((e) => e.extensions.code as string));
          return { ...one, errors };
        };
        setResult(Array.isArray(result) ? result.map(finish) : finish(result as ExecutionResult));
      },
      onResponse: ({ request, response }) => {
        const info = this.requests.get(request);
        if (!info) return;
        response.headers.set("x-request-id", info.id);
        this.record({
          transport: "http",
          requestId: info.id,
          operation: info.operation,
          durationMs: performance.now() - info.started,
          codes: info.codes,
          actor: this.principalOf(request)?.name,
          status: response.status,
        });
      },
    };
  }
}
