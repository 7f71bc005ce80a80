/** One RFC 6902 operation, as patchContext takes it. */
export interface PatchOperation {
  readonly op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  readonly path: string;
  readonly value?: unknown;
  readonly from?: string;
}

/**
 * The JSON Patch that turns `from` into `to`: objects compared member by member, anything else
 * that differs replaced whole. Small writes stay small, and the change's paths name only what
 * changed, so path-filtered watchers are woken only by their paths.
 */
export function diff(from: unknown, to: unknown, path = "", ops: PatchOperation[] = []): PatchOperation[] {
  if (isObject(from) && isObject(to)) {
    for (const key of Object.keys(from)) {
      if (to[key] === undefined) ops.push({ op: "remove", path: `${path}/${escape(key)}` });
    }
    for (const [key, value] of Object.entries(to)) {
      if (value === undefined) continue;
      const child = `${path}/${escape(key)}`;
      if (!(key in from)) ops.push({ op: "add", path: child, value });
      else diff(from[key], value, child, ops);
    }
  } else if (!jsonEqual(from, to)) {
    ops.push({ op: "replace", path, value: to });
  }
  return ops;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function escape(segment: string): string {
  return segment.replaceAll("~", "~0").replaceAll("/", "~1");
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a).filter((k) => a[k] !== undefined);
    return keys.length === Object.keys(b).filter((k) => b[k] !== undefined).length && keys.every((k) => k in b && jsonEqual(a[k], b[k]));
  }
  return false;
}
