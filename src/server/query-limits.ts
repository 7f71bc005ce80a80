import {
  type ASTVisitor,
  type DocumentNode,
  type GraphQLArgument,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
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
  visit,
  BREAK,
} from "graphql";
import { ErrorCode } from "../errors.js";

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
   * once per item it may return: its `first` or `limit` argument (a literal, or the variable's value,
   * else the variable's or the argument's default), else 10. A connection's `first` counts for its
   * `edges`.
   */
  readonly maxCost: number;
  /**
   * Times one selection set may select the same response name, fragments included. graphql's rule
   * that checks repeated fields can be merged takes time quadratic in this number.
   */
  readonly maxFieldRepeats: number;
}


/** The arguments that say how many items a list (or a connection's edges) may return. */
const SIZE_ARGUMENTS = new Set(["first", "limit", "last"]);

/** The list fields of a page object that its field's size argument counts: a connection's edges, HistoryPage's changes. */
const PAGE_ITEMS = new Set(["edges", "changes"]);

/** Items a list field is assumed to return when nothing says how many (no `first` or `limit`). */
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
 * Validation rules for `limits.maxDepth`, `maxAliases` and `maxFieldRepeats`, which depend on the
 * document alone, to run before graphql's `specifiedRules` (whose overlapping-fields rule is
 * quadratic in a selection's size); `costRule` adds the one that depends on the variables too. Each
 * limit a document breaks gives one GraphQLError with extensions `{ code: "LIMIT_EXCEEDED", limit:
 * "depth" | "aliases" | "cost" | "fieldRepeats", max, actual }`; depth and cost are measured per
 * operation and the worst one is reported. Fragments are measured once each, so a fragment spread
 * in many places costs near-linear time, and fragment cycles or undefined fragments (reported by
 * graphql's own rules) count 0.
 */
export function documentLimitRules(limits: QueryLimits): ValidationRule[] {
  return [depthRule(limits.maxDepth), aliasRule(limits.maxAliases), repeatRule(limits.maxFieldRepeats)];
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

/**
 * The rule for `maxCost` (see QueryLimits.maxCost), measuring list sizes given as variables by
 * `variables`, the request's values (null or absent: the variable's default applies).
 */
export function costRule(max: number, variables: Readonly<Record<string, unknown>> = {}): ValidationRule {
  return (context) => {
    const schema = context.getSchema();
    /** `pageSize`: the `first` of the connection whose fields these are, for its `edges`. */
    const cost = (set: SelectionSetNode, parent: GraphQLNamedType | undefined, pageSize?: number): number => {
      let total = 0;
      for (const selection of set.selections) {
        if (selection.kind === Kind.FIELD) total += fieldCost(selection, parent, pageSize);
        else if (selection.kind === Kind.INLINE_FRAGMENT) {
          total += cost(selection.selectionSet, selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent, pageSize);
        } else total += fragmentCost(selection.name.value);
      }
      return total;
    };
    let operation: OperationDefinitionNode | undefined;
    const fieldCost = (field: FieldNode, parent: GraphQLNamedType | undefined, pageSize: number | undefined): number => {
      const def = parent && fieldDef(schema, parent, field.name.value);
      if (!def || !field.selectionSet || INTROSPECTION.has(field.name.value)) return 1;
      const size = sizeArgument(field, def, operation, variables);
      const type = getNamedType(def.type);
      if (!isListType(getNullableType(def.type))) return 1 + cost(field.selectionSet, type, size);
      const items = size ?? (PAGE_ITEMS.has(field.name.value) ? pageSize : undefined) ?? DEFAULT_LIST_FACTOR;
      return 1 + items * cost(field.selectionSet, type);
    };
    // Fragments are measured once, outside any connection: a fragment's edges count 10 per item.
    const fragmentCost = memoizeFragments(context, 0, (fragment) =>
      cost(fragment.selectionSet, schema.getType(fragment.typeCondition.name.value)),
    );
    const rootType = (op: OperationDefinitionNode) => schema.getRootType(op.operation) ?? undefined;
    return checkOperations(context, "cost", max, (op) => {
      operation = op;
      return cost(op.selectionSet, rootType(op));
    });
  };
}

/**
 * Whether some list size in `document` is a variable (a `first` or `limit` argument given as
 * `$name`): only then does its cost depend on the request's variables.
 */
export function sizesFromVariables(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    Argument(arg) {
      if (SIZE_ARGUMENTS.has(arg.name.value) && arg.value.kind === Kind.VARIABLE) found = true;
      return found ? BREAK : undefined;
    },
  });
  return found;
}

/** The field `name` of `parent`, including the introspection fields of the query root. */
function fieldDef(schema: GraphQLSchema, parent: GraphQLNamedType, name: string): GraphQLField<unknown, unknown> | undefined {
  if (parent === schema.getQueryType() && name === SchemaMetaFieldDef.name) return SchemaMetaFieldDef;
  if (parent === schema.getQueryType() && name === TypeMetaFieldDef.name) return TypeMetaFieldDef;
  return isObjectType(parent) || isInterfaceType(parent) ? parent.getFields()[name] : undefined;
}

/**
 * The items a field's `first`, `limit` or `last` arguments ask for (the largest; negative as 0),
 * or undefined when it has none or no value is an integer: a literal; a variable's value, or when
 * it is absent the variable's default; otherwise (left out, or null, which the resolvers read as
 * left out) the argument's default in the schema.
 */
function sizeArgument(
  field: FieldNode,
  def: GraphQLField<unknown, unknown>,
  operation: OperationDefinitionNode | undefined,
  variables: Readonly<Record<string, unknown>>,
): number | undefined {
  // A field with several (history: limit, last) may return as many as the largest says.
  let largest: number | undefined;
  for (const arg of def.args) {
    if (!SIZE_ARGUMENTS.has(arg.name)) continue;
    const size = sizeOf(arg, field, operation, variables);
    if (size !== undefined) largest = Math.max(largest ?? 0, size);
  }
  return largest;
}

function sizeOf(
  arg: GraphQLArgument,
  field: FieldNode,
  operation: OperationDefinitionNode | undefined,
  variables: Readonly<Record<string, unknown>>,
): number | undefined {
  let value: unknown = arg.defaultValue;
  const node = field.arguments?.find((a) => a.name.value === arg.name)?.value;
  if (node?.kind === Kind.INT) value = Number(node.value);
  else if (node?.kind === Kind.VARIABLE) {
    const name = node.name.value;
    const declared = operation?.variableDefinitions?.find((v) => v.variable.name.value === name)?.defaultValue;
    if (typeof variables[name] === "number") value = variables[name];
    else if (variables[name] === undefined && declared?.kind === Kind.INT) value = Number(declared.value);
  } else if (node) value = undefined;
  return typeof value === "number" && Number.isInteger(value) ? Math.max(0, value) : undefined;
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
