import {
  type ASTVisitor,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLOutputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
  GraphQLError,
  Kind,
  Lexer,
  SchemaMetaFieldDef,
  Source,
  TokenKind,
  TypeMetaFieldDef,
  getNamedType,
  getNullableType,
  isInterfaceType,
  isListType,
  isObjectType,
  parse,
} from "graphql";
import { ErrorCode } from "./errors.js";

/** Bounds on one GraphQL document, each refused with LIMIT_EXCEEDED and `extensions.limit` naming it. */
export interface QueryLimits {
  /** Deepest field nesting of an operation, fragments expanded; root fields are depth 1. */
  readonly maxDepth: number;
  /** Aliased fields written in the document (operations and fragment definitions), each occurrence once. */
  readonly maxAliases: number;
  /** Lexical tokens of the document, comments and end of file not counted. */
  readonly maxTokens: number;
  /**
   * Fields an operation may resolve: each field costs 1, and the selections under a list field count
   * once per expected item (its `first` or `limit` integer literal, else 10).
   */
  readonly maxCost: number;
  /**
   * Times one selection set may select the same response name, fragments included. graphql's rule
   * that checks repeated fields can be merged takes time quadratic in this number.
   */
  readonly maxFieldRepeats: number;
}


/** Items a list field is assumed to return when it has no `first` or `limit` integer literal. */
const DEFAULT_LIST_FACTOR = 10;

function limitError(
  limit: "depth" | "aliases" | "tokens" | "cost" | "fieldRepeats",
  message: string,
  details: { max: number; actual?: number },
  nodes?: OperationDefinitionNode,
): GraphQLError {
  return new GraphQLError(message, { nodes, extensions: { code: ErrorCode.LIMIT_EXCEEDED, limit, ...details } });
}

/**
 * Brackets (`{`, `[`, `(`) open at once that a document may have: deeper than any query the
 * depth limit lets through, with an inline document as deep as SWARM_MAX_DOCUMENT_DEPTH allows,
 * and far below where graphql's recursive parser runs out of stack (about 1,600 here).
 */
export const MAX_NESTING = 128;

/**
 * graphql's `parse`, after one pass of its lexer that refuses a document of more than
 * `maxTokens` tokens (extensions `{ code: "LIMIT_EXCEEDED", limit: "tokens", max }`) or with
 * brackets nested more than MAX_NESTING deep (`limit: "depth"`), before the parser could
 * overflow its stack. Syntax errors are thrown as graphql reports them.
 */
export function parseLimited(source: string, maxTokens: number): DocumentNode {
  const lexer = new Lexer(new Source(source));
  let open = 0;
  try {
    for (let count = 0; ; count++) {
      const token = lexer.advance();
      if (token.kind === TokenKind.EOF) break;
      if (count === maxTokens) throw limitError("tokens", `query exceeds the limit of ${maxTokens} tokens`, { max: maxTokens });
      if (token.kind === TokenKind.BRACE_L || token.kind === TokenKind.BRACKET_L || token.kind === TokenKind.PAREN_L) {
        if (++open > MAX_NESTING) throw limitError("depth", `brackets nest more than ${MAX_NESTING} deep`, { max: MAX_NESTING });
      } else if (token.kind === TokenKind.BRACE_R || token.kind === TokenKind.BRACKET_R || token.kind === TokenKind.PAREN_R) open--;
    }
  } catch (error) {
    if (error instanceof GraphQLError && error.extensions.code === ErrorCode.LIMIT_EXCEEDED) throw error;
    // A lexical error: the parser reports it, with its position.
  }
  return parse(source, { maxTokens });
}

/**
 * Introspection fields count 1 and are not measured inside: the schema bounds what they can
 * reach, GraphiQL's query is deeper than any limit here, and only admins may run them (the
 * server refuses them to other keys before execution).
 */
const INTROSPECTION = new Set(["__schema", "__type"]);

/**
 * Validation rules for `limits.maxDepth`, `maxAliases`, `maxCost` and `maxFieldRepeats`, to run
 * before graphql's `specifiedRules` (whose overlapping-fields rule is quadratic in a selection's
 * size). Each limit a document breaks gives one GraphQLError with extensions `{ code:
 * "LIMIT_EXCEEDED", limit: "depth" | "aliases" | "cost" | "fieldRepeats", max, actual }`; depth and
 * cost are measured per operation and the worst one is reported. Fragments are measured once each, so a
 * fragment spread in many places costs near-linear time, and fragment cycles or undefined fragments
 * (reported by graphql's own rules) count 0.
 */
export function limitRules(limits: QueryLimits): ValidationRule[] {
  return [depthRule(limits.maxDepth), aliasRule(limits.maxAliases), costRule(limits.maxCost), repeatRule(limits.maxFieldRepeats)];
}

/**
 * Counts, in every selection set of the document, how often each response name is selected,
 * through inline fragments and fragment spreads (a fragment spread twice in one set counts once,
 * as graphql merges it once; each fragment's counts are computed once; a cycle counts nothing),
 * and reports the first name selected more than `max` times.
 */
function repeatRule(max: number): ValidationRule {
  return (context) => {
    const counts = (set: SelectionSetNode, into = new Map<string, number>(), spread = new Set<string>()): Map<string, number> => {
      for (const selection of set.selections) {
        if (selection.kind === Kind.FIELD) {
          const name = selection.alias?.value ?? selection.name.value;
          into.set(name, (into.get(name) ?? 0) + 1);
        } else if (selection.kind === Kind.INLINE_FRAGMENT) counts(selection.selectionSet, into, spread);
        else if (!spread.has(selection.name.value)) {
          spread.add(selection.name.value);
          for (const [name, n] of fragmentCounts(selection.name.value)) into.set(name, (into.get(name) ?? 0) + n);
        }
      }
      return into;
    };
    const fragmentCounts = memoizeFragments<ReadonlyMap<string, number>>(context, new Map(), (fragment) => counts(fragment.selectionSet));
    let reported = false;
    return {
      SelectionSet(set) {
        if (reported) return false;
        for (const [name, actual] of counts(set)) {
          if (actual <= max) continue;
          reported = true;
          context.reportError(limitError("fieldRepeats", `${JSON.stringify(name)} is selected ${actual} times in one selection set; the limit is ${max}`, { max, actual }));
          return false;
        }
        return undefined;
      },
    };
  };
}

function depthRule(max: number): ValidationRule {
  return (context) => {
    const depth = (set: SelectionSetNode): number => {
      let deepest = 0;
      for (const selection of set.selections) {
        const d =
          selection.kind === Kind.FIELD ? 1 + (selection.selectionSet && !INTROSPECTION.has(selection.name.value) ? depth(selection.selectionSet) : 0)
          : selection.kind === Kind.INLINE_FRAGMENT ? depth(selection.selectionSet)
          : fragmentDepth(selection.name.value);
        deepest = Math.max(deepest, d);
      }
      return deepest;
    };
    const fragmentDepth = memoizeFragments(context, 0, (fragment) => depth(fragment.selectionSet));
    return checkOperations(context, "depth", max, (operation) => depth(operation.selectionSet));
  };
}

function aliasRule(max: number): ValidationRule {
  return (context) => {
    let actual = 0;
    return {
      Field(field) {
        if (field.alias) actual++;
      },
      Document: {
        leave() {
          if (actual <= max) return;
          context.reportError(limitError("aliases", `query alias count ${actual} exceeds the limit of ${max}`, { max, actual }));
        },
      },
    };
  };
}

function costRule(max: number): ValidationRule {
  return (context) => {
    const schema = context.getSchema();
    const cost = (set: SelectionSetNode, parent: GraphQLNamedType | undefined): number => {
      let total = 0;
      for (const selection of set.selections) {
        if (selection.kind === Kind.FIELD) total += fieldCost(selection, parent);
        else if (selection.kind === Kind.INLINE_FRAGMENT) {
          total += cost(selection.selectionSet, selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent);
        } else total += fragmentCost(selection.name.value);
      }
      return total;
    };
    const fieldCost = (field: FieldNode, parent: GraphQLNamedType | undefined): number => {
      const def = parent && fieldDef(schema, parent, field.name.value);
      if (!def || !field.selectionSet || INTROSPECTION.has(field.name.value)) return 1;
      return 1 + listFactor(field, def.type) * cost(field.selectionSet, getNamedType(def.type));
    };
    const fragmentCost = memoizeFragments(context, 0, (fragment) =>
      cost(fragment.selectionSet, schema.getType(fragment.typeCondition.name.value)),
    );
    const rootType = (operation: OperationDefinitionNode) => schema.getRootType(operation.operation) ?? undefined;
    return checkOperations(context, "cost", max, (operation) => cost(operation.selectionSet, rootType(operation)));
  };
}

/** The field `name` of `parent`, including the introspection fields of the query root. */
function fieldDef(schema: GraphQLSchema, parent: GraphQLNamedType, name: string): GraphQLField<unknown, unknown> | undefined {
  if (parent === schema.getQueryType() && name === SchemaMetaFieldDef.name) return SchemaMetaFieldDef;
  if (parent === schema.getQueryType() && name === TypeMetaFieldDef.name) return TypeMetaFieldDef;
  return isObjectType(parent) || isInterfaceType(parent) ? parent.getFields()[name] : undefined;
}

/** How many times a field's selections count: 1, or for a list its `first`/`limit` literal (negative as 0), else the default. */
function listFactor(field: FieldNode, type: GraphQLOutputType): number {
  if (!isListType(getNullableType(type))) return 1;
  const size = field.arguments?.find((arg) => arg.name.value === "first" || arg.name.value === "limit")?.value;
  return size?.kind === Kind.INT ? Math.max(0, Number(size.value)) : DEFAULT_LIST_FACTOR;
}

/**
 * A fragment's measure by name, computed once. A fragment met again while it is being measured (a
 * cycle) and an undefined fragment measure `none`.
 */
function memoizeFragments<T>(context: ValidationContext, none: T, measure: (fragment: FragmentDefinitionNode) => T): (name: string) => T {
  const memo = new Map<string, T>();
  return (name) => {
    if (memo.has(name)) return memo.get(name)!;
    const fragment = context.getFragment(name);
    if (!fragment) return none;
    memo.set(name, none); // what a cycle back to this fragment measures
    const value = measure(fragment);
    memo.set(name, value);
    return value;
  };
}

/** A visitor reporting the document's worst operation when its `limit` measure is over `max`. */
function checkOperations(
  context: ValidationContext,
  limit: "depth" | "cost",
  max: number,
  measure: (operation: OperationDefinitionNode) => number,
): ASTVisitor {
  return {
    Document(document: DocumentNode) {
      let worst: { operation: OperationDefinitionNode; actual: number } | undefined;
      for (const definition of document.definitions) {
        if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
        const actual = measure(definition);
        if (!worst || actual > worst.actual) worst = { operation: definition, actual };
      }
      if (worst && worst.actual > max) {
        const { operation, actual } = worst;
        context.reportError(limitError(limit, `query ${limit} ${actual} exceeds the limit of ${max}`, { max, actual }, operation));
      }
      return false; // operations were measured whole; the visitor need not descend
    },
  };
}
