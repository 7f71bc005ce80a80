// JSON Pointers (RFC 6901) and a client-side structural diff of two JSON values: what the
// console shows as "path: old → new" before a write.

/** The pointer of member `key` under `pointer` ("" is the whole document). */
export function childPointer(pointer, key) {
  return `${pointer}/${String(key).replace(/~/g, "~0").replace(/\//g, "~1")}`;
}

/** Pointers typed by an operator: comma or newline separated, blanks dropped. */
export function parsePointers(text) {
  return text
    .split(/[,\n]/)
    .map((p) => p.trim())
    .filter((p, i, all) => p !== "" && all.indexOf(p) === i);
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * The changes that turn `before` into `after`, as JSON Patch-like entries `{ op, path, old, value }`
 * (op add, remove or replace; `old` is absent for add, `value` for remove): objects compared
 * member by member and arrays index by index; anything else that differs is replaced whole.
 * At most `max` entries (default 1000); `truncated` on the array says more were left out.
 */
export function diffJson(before, after, max = 1000) {
  const out = [];
  const walk = (a, b, path) => {
    if (out.length >= max) return;
    if (isObject(a) && isObject(b)) {
      for (const key of Object.keys(a)) {
        if (!Object.hasOwn(b, key)) out.push({ op: "remove", path: childPointer(path, key), old: a[key] });
        else walk(a[key], b[key], childPointer(path, key));
      }
      for (const key of Object.keys(b)) if (!Object.hasOwn(a, key)) out.push({ op: "add", path: childPointer(path, key), value: b[key] });
    } else if (Array.isArray(a) && Array.isArray(b)) {
      const common = Math.min(a.length, b.length);
      for (let i = 0; i < common; i++) walk(a[i], b[i], childPointer(path, i));
      for (let i = common; i < b.length; i++) out.push({ op: "add", path: childPointer(path, i), value: b[i] });
      for (let i = a.length - 1; i >= common; i--) out.push({ op: "remove", path: childPointer(path, i), old: a[i] });
    } else if (JSON.stringify(a) !== JSON.stringify(b)) {
      out.push({ op: "replace", path, old: a, value: b });
    }
  };
  walk(before, after, "");
  if (out.length > max) out.length = max;
  out.truncated = out.length >= max;
  return out;
}
