import { AppError, ErrorCode } from "../errors.js";
import { arrayIndex, childAt, formatPointer, parsePointer, pointersOverlap, valueAt } from "./pointer.js";
import { isJsonObject, jsonEqual, type JsonValue } from "./types.js";

/** One RFC 6902 operation. `value` is required by add, replace and test (null is a value). */
export interface PatchOperation {
  readonly op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  readonly path: string;
  readonly from?: string | null;
  readonly value?: JsonValue;
}

/** A document change: the new document, the JSON Patch that produced it and the paths it touched. */
export interface AppliedChange {
  readonly document: JsonValue;
  readonly patch: readonly PatchOperation[];
  readonly paths: readonly string[];
}

class PatchFailure extends Error {}

/** Returns `node` with its child at `segment` replaced by `leaf(child)`; copies only this container. */
function withChild(node: JsonValue, segment: string, child: JsonValue): JsonValue {
  if (Array.isArray(node)) {
    const copy = node.slice();
    copy[arrayIndex(segment)!] = child;
    return copy;
  }
  return { ...(node as Record<string, JsonValue>), [segment]: child };
}

/**
 * Rebuilds the containers along `segments` (copy-on-write: everything off the path is shared)
 * and lets `edit` produce the new parent of the last segment.
 */
function editParent(
  root: JsonValue,
  segments: readonly string[],
  edit: (parent: JsonValue, last: string) => JsonValue,
): JsonValue {
  const walk = (node: JsonValue, depth: number): JsonValue => {
    const segment = segments[depth]!;
    if (depth === segments.length - 1) return edit(node, segment);
    const child = childAt(node, segment);
    if (child === undefined) throw new PatchFailure(`${formatPointer(segments.slice(0, depth + 1))} does not exist`);
    return withChild(node, segment, walk(child, depth + 1));
  };
  return walk(root, 0);
}

function add(root: JsonValue, segments: readonly string[], value: JsonValue): JsonValue {
  if (segments.length === 0) return value;
  return editParent(root, segments, (parent, last) => {
    if (Array.isArray(parent)) {
      const i = last === "-" ? parent.length : arrayIndex(last);
      if (i === null || i > parent.length) throw new PatchFailure(`array index ${last} is out of range`);
      const copy = parent.slice();
      copy.splice(i, 0, value);
      return copy;
    }
    // A computed key defines an own member, even "__proto__" (only a literal `__proto__:` sets the prototype).
    if (isJsonObject(parent)) return { ...parent, [last]: value };
    throw new PatchFailure("parent is not an object or array");
  });
}

function remove(root: JsonValue, segments: readonly string[]): JsonValue {
  if (segments.length === 0) throw new PatchFailure("cannot remove the whole document");
  return editParent(root, segments, (parent, last) => {
    if (childAt(parent, last) === undefined) throw new PatchFailure("path does not exist");
    if (Array.isArray(parent)) {
      const copy = parent.slice();
      copy.splice(arrayIndex(last)!, 1);
      return copy;
    }
    const { [last]: _removed, ...rest } = parent as Record<string, JsonValue>;
    return rest;
  });
}

function replace(root: JsonValue, segments: readonly string[], value: JsonValue): JsonValue {
  if (segments.length === 0) return value;
  return editParent(root, segments, (parent, last) => {
    if (childAt(parent, last) === undefined) throw new PatchFailure("path does not exist");
    return withChild(parent, last, value);
  });
}

function pointerOf(raw: string | null | undefined, field: string): string[] {
  if (typeof raw !== "string") throw new PatchFailure(`"${field}" is required`);
  const segments = parsePointer(raw);
  if (segments === null) throw new PatchFailure(`"${field}" is not a JSON Pointer: ${JSON.stringify(raw)}`);
  return segments;
}

function valueOf(operation: PatchOperation): JsonValue {
  if (!("value" in operation) || operation.value === undefined) throw new PatchFailure(`"value" is required`);
  return operation.value;
}

function applyOne(doc: JsonValue, operation: PatchOperation): JsonValue {
  const path = pointerOf(operation.path, "path");
  switch (operation.op) {
    case "add":
      return add(doc, path, valueOf(operation));
    case "remove":
      return remove(doc, path);
    case "replace":
      return replace(doc, path, valueOf(operation));
    case "move": {
      const from = pointerOf(operation.from, "from");
      const value = valueAt(doc, from);
      if (value === undefined) throw new PatchFailure(`"from" does not exist`);
      if (operation.from!.length < operation.path.length && pointersOverlap(operation.from!, operation.path)) {
        throw new PatchFailure(`cannot move a value into itself`);
      }
      return add(remove(doc, from), path, value);
    }
    case "copy": {
      const value = valueAt(doc, pointerOf(operation.from, "from"));
      if (value === undefined) throw new PatchFailure(`"from" does not exist`);
      return add(doc, path, value);
    }
    case "test": {
      const actual = valueAt(doc, path);
      if (actual === undefined || !jsonEqual(actual, valueOf(operation))) throw new PatchFailure("test failed");
      return doc;
    }
    default:
      throw new PatchFailure(`unknown op ${JSON.stringify((operation as { op: unknown }).op)}`);
  }
}

/**
 * Applies an RFC 6902 patch all-or-nothing without mutating `doc` (unchanged parts are shared).
 * Throws AppError INVALID_PATCH naming the failing operation's index and path.
 */
export function applyPatch(doc: JsonValue, patch: readonly PatchOperation[]): AppliedChange {
  let current = doc;
  const paths: string[] = [];
  patch.forEach((operation, index) => {
    try {
      current = applyOne(current, operation);
    } catch (err) {
      if (!(err instanceof PatchFailure)) throw err;
      throw new AppError(ErrorCode.INVALID_PATCH, `patch operation ${index} (${operation.op} ${operation.path}): ${err.message}`, {
        operationIndex: index,
        path: operation.path,
      });
    }
    if (operation.op === "test") return;
    if (operation.op === "move") paths.push(operation.from!);
    paths.push(operation.path);
  });
  return { document: current, patch, paths: [...new Set(paths)] };
}
