import { formatPointer } from "./pointer.js";
import type { AppliedChange, PatchOperation } from "./patch.js";
import { isJsonObject, jsonEqual, type JsonValue } from "./types.js";

/**
 * The change from `before` to `after` as a JSON Patch: objects are compared member by member,
 * anything else that differs (arrays included) is replaced whole.
 */
export function diffDocuments(before: JsonValue, after: JsonValue): AppliedChange {
  const ops: PatchOperation[] = [];
  const walk = (a: JsonValue, b: JsonValue, at: string[]): void => {
    if (jsonEqual(a, b)) return;
    if (isJsonObject(a) && isJsonObject(b)) {
      for (const key of Object.keys(a)) {
        if (!Object.hasOwn(b, key)) ops.push({ op: "remove", path: formatPointer([...at, key]) });
      }
      for (const [key, value] of Object.entries(b)) {
        if (Object.hasOwn(a, key)) walk(a[key]!, value, [...at, key]);
        else ops.push({ op: "add", path: formatPointer([...at, key]), value });
      }
      return;
    }
    ops.push({ op: "replace", path: formatPointer(at), value: b });
  };
  walk(before, after, []);
  return { document: after, patch: ops, paths: ops.map((o) => o.path) };
}
