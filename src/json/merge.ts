import { formatPointer } from "./pointer.js";
import type { AppliedChange, PatchOperation } from "./patch.js";
import { isJsonObject, type JsonObject, type JsonValue } from "./types.js";

/** RFC 7386 result of merging `patch` into nothing: the patch with its nulls removed. */
function withoutNulls(patch: JsonValue): JsonValue {
  if (!isJsonObject(patch)) return patch;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(patch)) if (v !== null) out[k] = withoutNulls(v);
  return out;
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
    const out: JsonObject = { ...node };
    for (const [key, value] of Object.entries(mergeDoc)) {
      const path = [...at, key];
      if (value === null) {
        if (Object.hasOwn(out, key)) {
          delete out[key];
          ops.push({ op: "remove", path: formatPointer(path) });
        }
      } else if (isJsonObject(value) && Object.hasOwn(out, key) && isJsonObject(out[key]!)) {
        out[key] = merge(out[key]!, value, path);
      } else {
        out[key] = withoutNulls(value);
        ops.push({ op: "add", path: formatPointer(path), value: out[key]! });
      }
    }
    return out;
  };
  const document = merge(target, patch, []);
  return { document, patch: ops, paths: ops.map((o) => o.path) };
}
