import { formatPointer } from "./pointer.js";
import type { AppliedChange, PatchOperation } from "./patch.js";
import { isJsonObject, type JsonObject, type JsonValue } from "./types.js";

/** RFC 7386 result of merging `patch` into nothing: the patch with its nulls removed. */
function withoutNulls(patch: JsonValue): JsonValue {
  if (!isJsonObject(patch)) return patch;
  return Object.fromEntries(Object.entries(patch).flatMap(([k, v]) => (v === null ? [] : [[k, withoutNulls(v)]])));
}

/**
 * Applies an RFC 7386 merge patch without mutating `target`, and expresses the change as the
 * equivalent JSON Patch (one add/remove per member the merge set or deleted).
 */
export function applyMergePatch(target: JsonValue, patch: JsonValue): AppliedChange {
  const ops: PatchOperation[] = [];
  const merge = (node: JsonValue, mergeDoc: JsonValue, at: string[]): JsonValue => {
    if (!isJsonObject(mergeDoc) || !isJsonObject(node)) {
      const value = withoutNulls(mergeDoc);
      ops.push({ op: at.length === 0 ? "replace" : "add", path: formatPointer(at), value });
      return value;
    }
    // Members are collected in a Map and turned into an object by Object.fromEntries, which
    // defines own properties: assigning out[key] would run the __proto__ setter instead.
    const out = new Map(Object.entries(node));
    for (const [key, value] of Object.entries(mergeDoc)) {
      const path = [...at, key];
      const current = out.get(key);
      if (value === null) {
        if (out.delete(key)) ops.push({ op: "remove", path: formatPointer(path) });
      } else if (isJsonObject(value) && current !== undefined && isJsonObject(current)) {
        out.set(key, merge(current, value, path));
      } else {
        const added = withoutNulls(value);
        out.set(key, added);
        ops.push({ op: "add", path: formatPointer(path), value: added });
      }
    }
    return Object.fromEntries(out) as JsonObject;
  };
  const document = merge(target, patch, []);
  return { document, patch: ops, paths: ops.map((o) => o.path) };
}
