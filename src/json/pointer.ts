import { isJsonObject, type JsonValue } from "./types.js";

/**
 * Splits an RFC 6901 JSON Pointer into unescaped segments ("" is the whole document, []).
 * Returns null when the string is not a pointer (non-empty and not starting with "/").
 */
export function parsePointer(pointer: string): string[] | null {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) return null;
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

/** Joins segments into a JSON Pointer, escaping "~" and "/". */
export function formatPointer(segments: readonly string[]): string {
  return segments.map((s) => "/" + s.replace(/~/g, "~0").replace(/\//g, "~1")).join("");
}

/** RFC 6901 array index: "0" or digits without a leading zero; returns null otherwise. */
export function arrayIndex(segment: string): number | null {
  return /^(0|[1-9][0-9]*)$/.test(segment) ? Number(segment) : null;
}

/** The child of a container at one segment, or undefined (own properties only). */
export function childAt(node: JsonValue, segment: string): JsonValue | undefined {
  if (Array.isArray(node)) {
    const i = arrayIndex(segment);
    return i !== null && i < node.length ? node[i] : undefined;
  }
  if (isJsonObject(node) && Object.hasOwn(node, segment)) return node[segment];
  return undefined;
}

/** The value at a path of segments, or undefined when it does not resolve. */
export function valueAt(root: JsonValue, segments: readonly string[]): JsonValue | undefined {
  let node: JsonValue | undefined = root;
  for (const segment of segments) {
    if (node === undefined) return undefined;
    node = childAt(node, segment);
  }
  return node;
}

/**
 * Whether one JSON Pointer equals the other or is a prefix of it on whole segments ("" is a prefix
 * of all), compared as text: a valid pointer has one spelling, so no parsing is needed.
 */
export function pointersOverlap(a: string, b: string): boolean {
  const [short, long] = a.length <= b.length ? [a, b] : [b, a];
  return long === short || long.startsWith(`${short}/`);
}
