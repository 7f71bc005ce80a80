import { isJsonObject, jsonEqual, type JsonObject, type JsonValue } from "../json/types.js";
import { checkDepth, checkRules, checkSize, type DocumentLimits } from "./document-rules.js";

/**
 * A document as the scripts store it, by top-level member (lua/_1-common.lua document_json,
 * write_members): a write sends and stores only the members that changed, and history keeps only
 * what each version replaced, so a small change to a large document costs what it changes.
 */
export interface StoredDocument {
  /** The members' names as JSON, in document order, one per line. */
  readonly order: string;
  /** name JSON, value JSON, ... of every member. */
  readonly members: string[];
  /** The document's JSON, for its CREATED feed entry. */
  readonly json: string;
  /** UTF-8 bytes of `json`. */
  readonly bytes: number;
}

/** What a write of a new version changes (update-context ARGV 4 and 23...). */
export interface DocumentChange {
  /** '': nothing (the document equals its base); '=': members, in the same order; 'o' + the new order. */
  readonly order: string;
  /** name JSON, value JSON ('' = removed), ... of the members that differ from the base. */
  readonly members: string[];
  /** UTF-8 bytes of the new document's JSON. */
  readonly bytes: number;
}

/**
 * The JSON of member values this process has serialized, by value: values are never mutated
 * (json/types.ts), so a member that a write leaves as it is need not be serialized again when the
 * next write changes another one.
 */
const serialized = new WeakMap<object, string>();

function jsonOf(value: JsonValue): string {
  if (typeof value !== "object" || value === null) return JSON.stringify(value);
  let json = serialized.get(value);
  if (json === undefined) {
    json = JSON.stringify(value);
    serialized.set(value, json);
  }
  return json;
}

const orderOf = (document: JsonObject) => Object.keys(document).map((name) => JSON.stringify(name)).join("\n");

/** Bytes one member adds to its document's JSON: name, colon, value and a comma. */
const entryBytes = (name: JsonValue, value: JsonValue) => Buffer.byteLength(JSON.stringify(name)) + Buffer.byteLength(jsonOf(value)) + 2;

/** A document's JSON size from the sum of its entries (the last comma stands for the closing brace). */
const documentBytes = (entries: number) => (entries === 0 ? 2 : entries + 1);

/**
 * Checks a new document (rules, depth, size) and splits it into what create-context stores.
 * Throws VALIDATION_FAILED or LIMIT_EXCEEDED.
 */
export function storedDocument(document: JsonValue, limits: DocumentLimits): StoredDocument {
  checkRules(document);
  checkDepth(document, limits, "document");
  const { order, members } = membersOf(document);
  // The members' JSON put together is the document's, as JSON.stringify would write it.
  const entries: string[] = [];
  for (let i = 0; i < members.length; i += 2) entries.push(`${members[i]}:${members[i + 1]}`);
  const json = `{${entries.join(",")}}`;
  const bytes = Buffer.byteLength(json);
  checkSize(bytes, limits);
  return { order, members, json, bytes };
}

/**
 * What turns `base` (of `baseBytes`, checked when it was written) into `next`: the members whose
 * values differ, compared as JSON values (object key order aside, as the document's equality is).
 * Only those are checked for depth and serialized; the rules are checked on the whole of `next`.
 * Throws VALIDATION_FAILED or LIMIT_EXCEEDED.
 */
export function documentChange(base: JsonObject, baseBytes: number, next: JsonValue, limits: DocumentLimits): DocumentChange {
  checkRules(next);
  const members: string[] = [];
  let entries = baseBytes === 2 && Object.keys(base).length === 0 ? 0 : baseBytes - 1;
  for (const name of Object.keys(base)) {
    if (Object.hasOwn(next, name)) continue;
    members.push(JSON.stringify(name), "");
    entries -= entryBytes(name, base[name]!);
  }
  for (const [name, value] of Object.entries(next)) {
    const before = Object.hasOwn(base, name) ? base[name] : undefined;
    if (before !== undefined && jsonEqual(before, value)) continue;
    if (isJsonObject(value) || Array.isArray(value)) checkDepth({ [name]: value }, limits, "document");
    members.push(JSON.stringify(name), jsonOf(value));
    entries += entryBytes(name, value) - (before === undefined ? 0 : entryBytes(name, before));
  }
  const bytes = documentBytes(entries);
  if (members.length === 0) return { order: "", members, bytes };
  checkSize(bytes, limits);
  const order = orderOf(next);
  return { order: order === orderOf(base) ? "=" : `o${order}`, members, bytes };
}

/**
 * The history of a context stored by an earlier version of the server (a full snapshot per
 * version), in this storage: for each version after the first of `snapshots` (consecutive, oldest
 * first), what it replaced (lua/_1-common.lua write_members), as `snapshots` hash fields and values.
 */
export function replacedFields(snapshots: readonly { version: number; document: JsonObject }[]): string[] {
  const fields: string[] = [];
  for (let i = 1; i < snapshots.length; i++) {
    const { version, document } = snapshots[i]!;
    const before = snapshots[i - 1]!.document;
    const names: string[] = [];
    for (const name of new Set([...Object.keys(before), ...Object.keys(document)])) {
      const was = Object.hasOwn(before, name) ? before[name] : undefined;
      const is = Object.hasOwn(document, name) ? document[name] : undefined;
      if (was !== undefined && is !== undefined && jsonEqual(was, is)) continue;
      const encoded = JSON.stringify(name);
      names.push(encoded);
      if (was !== undefined) fields.push(`${version}.${encoded}`, jsonOf(was));
    }
    fields.push(String(version), names.join("\n"));
    if (orderOf(before) !== orderOf(document)) fields.push(`${version}o`, orderOf(before));
  }
  return fields;
}

/** A document split as the storage holds it, without the checks of a write (it was checked when written). */
export function membersOf(document: JsonObject): { order: string; members: string[] } {
  const members: string[] = [];
  for (const [name, value] of Object.entries(document)) members.push(JSON.stringify(name), jsonOf(value));
  return { order: orderOf(document), members };
}
