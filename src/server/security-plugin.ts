import { GraphQLError, validate, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from "graphql";
import type { Plugin } from "graphql-yoga";
import type { Principal } from "../security/auth.js";
import type { Introspection } from "../config.js";
import { AppError, ErrorCode, withProblems } from "../errors.js";
import type { Gate } from "../security/gate.js";
import { isJsonObject } from "../json/types.js";
import { selectsIntrospection } from "./operation-info.js";
import { costRule, documentLimitRules, parseLimited, sizesFromVariables, type QueryLimits } from "./query-limits.js";

const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.UNAUTHENTICATED]: 401,
  [ErrorCode.FORBIDDEN]: 403,
  [ErrorCode.RATE_LIMITED]: 429,
};

/** A refusal raised outside execution, as the GraphQL error of a response (with its HTTP status). */
export function refusal(err: AppError): GraphQLError {
  const status = STATUS[err.code];
  return new GraphQLError(err.message, { extensions: { ...err.extensions, ...(status ? { http: { status } } : {}) } });
}

/** An error about the request itself, with its HTTP status. */
function requestError(message: string, status: number): GraphQLError {
  return new GraphQLError(message, { extensions: withProblems(message, { code: ErrorCode.VALIDATION_FAILED, http: { status } }) });
}

/**
 * Why `params` are not a well-formed GraphQL-over-HTTP request, or undefined: the spec's
 * parameters are a string `query` (required), a string `operationName`, and `variables` and
 * `extensions` maps, the last three optional. yoga answers a missing query, like malformed JSON,
 * as a GraphQL error (HTTP 200 for application/json); the spec makes both a 400 for any media type.
 */
function malformedParams(params: unknown): string | undefined {
  if (!isJsonObject(params)) return "the request must be a JSON object of GraphQL parameters (query, operationName, variables, extensions)";
  if (typeof params.query !== "string") return "the request must have a query, a string";
  if (params.operationName != null && typeof params.operationName !== "string") return "operationName must be a string";
  for (const name of ["variables", "extensions"]) {
    if (params[name] != null && !isJsonObject(params[name])) return `${name} must be an object`;
  }
  return undefined;
}

/**
 * Whether `principal` (an authenticated key, or open mode's admin) may introspect the schema and
 * get field suggestions, under the server's `introspection` setting.
 */
export function seesSchema(principal: Principal, introspection: Introspection): boolean {
  return introspection === "authenticated" || (introspection === "admin" && principal.role === "admin");
}

/** The refusal of an introspection by a key that may not see the schema. */
function introspectionRefused(introspection: Introspection): AppError {
  const message = introspection === "off" ? "introspection is turned off on this server" : "introspection is for admin keys only";
  return new AppError(ErrorCode.FORBIDDEN, message, {});
}

/** graphql-js's hints at names ("Did you mean ...?"), which tell a caller the schema. */
const SUGGESTION = / ?Did you mean [^?]*\?/g;

/** An error message without schema hints, for callers that may not see the schema. */
export function withoutSuggestions(message: string): string {
  return message.replace(SUGGESTION, "");
}

/**
 * The yoga plugin that guards every HTTP and SSE request before it runs: the API key (an
 * UNAUTHENTICATED refusal otherwise), the key's rate limit (RATE_LIMITED), the document's size
 * bounds (tokens at parse; depth, aliases and cost, with the variables' values, at validation:
 * LIMIT_EXCEEDED) and introspection (FORBIDDEN for keys that may not see the schema under
 * `introspection`, see seesSchema). The WebSocket transport applies the same through `gate` and
 * yoga's envelop (ws-transport.ts). `principalOf` gives the principal of a request that passed.
 */
export function useSecurity(gate: Gate, limits: QueryLimits, introspection: Introspection): { plugin: Plugin; principalOf(request: Request): Principal | undefined } {
  const principals = new WeakMap<Request, Principal>();
  const rules = documentLimitRules(limits);
  /**
   * Per document, measured once (yoga's parser cache hands out the same document object for the
   * same query): the errors of the limits that do not depend on the variables, and whether its
   * cost does (a list size given as a variable), in which case the cost is measured at execution.
   */
  const measured = new WeakMap<DocumentNode, { errors: readonly GraphQLError[]; costByVariables: boolean }>();
  const measure = (schema: GraphQLSchema, document: DocumentNode) => {
    let known = measured.get(document);
    if (!known) {
      const costByVariables = sizesFromVariables(document);
      known = { errors: validate(schema, document, costByVariables ? rules : [...rules, costRule(limits.maxCost)]), costByVariables };
      measured.set(document, known);
    }
    return known;
  };
  /**
   * The cost refusal of a query or mutation whose list sizes are variables, measured with their
   * values as execution has them; validation (which yoga caches per document) cannot see them.
   * Nothing a subscription delivers takes a size argument.
   */
  const costWithVariables = (args: ExecutionArgs): ExecutionResult | undefined => {
    if (!measure(args.schema, args.document).costByVariables) return undefined;
    const errors = validate(args.schema, args.document, [costRule(limits.maxCost, args.variableValues ?? {})]);
    return errors.length > 0 ? { errors } : undefined;
  };
  const plugin: Plugin<{ principal?: Principal; request?: Request }> = {
    // yoga answers a content type it cannot parse with a bare 415, lets a malformed GET
    // (variables that are not JSON, say) through as a raw error, and answers malformed JSON or a
    // missing query with 200 for application/json: a request that is not well-formed
    // GraphQL-over-HTTP is a coded 400 (or 415) whatever the accepted media type.
    onRequestParse({ requestParser, setRequestParser }) {
      if (!requestParser) {
        setRequestParser(() => {
          throw requestError("send GraphQL as a POST of application/json, or as a GET with query parameters", 415);
        });
        return;
      }
      setRequestParser(async (request) => {
        let params;
        try {
          params = await requestParser(request);
        } catch (err) {
          if (err instanceof GraphQLError) throw requestError(err.message, (err.extensions.http as { status?: number } | undefined)?.status ?? 400);
          throw requestError(`malformed request: ${err instanceof Error ? err.message : String(err)}`, 400);
        }
        for (const one of Array.isArray(params) ? params : [params]) {
          const problem = malformedParams(one);
          if (problem) throw requestError(problem, 400);
        }
        return params;
      });
    },
    async onParams({ request, setResult }) {
      let principal = principals.get(request);
      try {
        if (!principal) {
          principal = gate.authenticate(request.headers.get("authorization"));
          principals.set(request, principal);
        }
        await gate.admit(principal);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        setResult({ errors: [refusal(err)] });
      }
    },
    onParse({ setParseFn }) {
      setParseFn((source) => parseLimited(typeof source === "string" ? source : source.body, limits.maxTokens));
    },
    onValidate({ params, setResult }) {
      // The limits first, alone and linear: a document past them never reaches graphql's own
      // rules, one of which takes time quadratic in a selection's size.
      const { errors } = measure(params.schema, params.documentAST);
      if (errors.length > 0) setResult(errors);
    },
    onExecute({ args, setResultAndStopExecution }) {
      const refused = costWithVariables(args);
      if (refused) return setResultAndStopExecution(refused);
      const principal = (args.contextValue as { principal: Principal }).principal;
      if (!seesSchema(principal, introspection) && selectsIntrospection(args.document, args.operationName)) {
        setResultAndStopExecution({ errors: [refusal(introspectionRefused(introspection))] });
      }
    },
  };
  return { plugin: plugin as Plugin, principalOf: (request) => principals.get(request) };
}
