/** A JSON value as JSON.parse returns it. Treated as immutable everywhere in the server. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Structural equality; object key order does not matter. */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]!));
  }
  if (isJsonObject(a) && isJsonObject(b)) {
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length &&
      keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k]!, b[k]!))
    );
  }
  return false;
}

/**
 * Nesting depth of a value (a scalar is 0, `{}` is 1), computed without recursion so hostile
 * input cannot overflow the stack. Stops counting once it passes `limit` and returns limit + 1.
 */
export function jsonDepth(value: JsonValue, limit: number): number {
  let max = 0;
  const stack: [JsonValue, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== "object" || node === null) continue;
    const d = depth + 1;
    if (d > limit) return limit + 1;
    if (d > max) max = d;
    for (const child of Array.isArray(node) ? node : Object.values(node)) stack.push([child, d]);
  }
  return max;
}
