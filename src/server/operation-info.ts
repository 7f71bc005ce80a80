import { getOperationAST, Kind, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode } from "graphql";

interface RootFields {
  readonly type: string;
  readonly fields: ReadonlySet<string>;
}

/**
 * Per document (yoga's parser cache hands out one object per query text) and operation name:
 * every request is labelled, and a non-admin's is also checked for introspection.
 */
const known = new WeakMap<DocumentNode, Map<string | null, RootFields>>();

/** The root fields an operation selects, through fragments; null when it names no operation of the document. */
function rootFields(document: DocumentNode, operationName: string | null | undefined): RootFields | null {
  let byName = known.get(document);
  if (!byName) known.set(document, (byName = new Map()));
  const found = byName.get(operationName ?? null);
  if (found) return found;
  const walked = walkRootFields(document, operationName);
  // Only operations of the document are kept: names a client makes up cannot grow the map.
  if (walked) byName.set(operationName ?? null, walked);
  return walked;
}

function walkRootFields(document: DocumentNode, operationName: string | null | undefined): RootFields | null {
  const operation = getOperationAST(document, operationName);
  if (!operation) return null;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  const fields = new Set<string>();
  const seen = new Set<string>();
  const walk = (set: SelectionSetNode) => {
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) fields.add(selection.name.value);
      else if (selection.kind === Kind.INLINE_FRAGMENT) walk(selection.selectionSet);
      else if (!seen.has(selection.name.value)) {
        seen.add(selection.name.value);
        const fragment = fragments.get(selection.name.value);
        if (fragment) walk(fragment.selectionSet);
      }
    }
  };
  walk(operation.selectionSet);
  return { type: operation.operation, fields };
}

/**
 * A label for metrics and logs of a VALIDATED document, bounded by the schema: `<type>:<root
 * field>` (e.g. `mutation:patchContext`), `<type>:multiple` for several root fields, and
 * `query:typename` for `__typename` alone. (Requests refused before validation are "invalid".)
 */
export function operationLabel(document: DocumentNode, operationName: string | null | undefined): string {
  const root = rootFields(document, operationName);
  if (!root) return "invalid";
  const named = [...root.fields].filter((f) => f !== "__typename");
  if (named.length !== 1) return `${root.type}:${named.length === 0 ? "typename" : "multiple"}`;
  return `${root.type}:${named[0]}`;
}

/** Whether the operation reads the schema (`__schema` or `__type`). */
export function selectsIntrospection(document: DocumentNode, operationName: string | null | undefined): boolean {
  const root = rootFields(document, operationName);
  return root !== null && (root.fields.has("__schema") || root.fields.has("__type"));
}
