// Proves the document's storage by top-level member: random patches, merges and rollbacks (members added, changed, removed, re-ordered) leave every retained version readable as it was written, key order included, from two servers whose caches differ; older versions are NOT_FOUND; what history keeps stays within the retained versions (no field left behind, history limit 1 included); and a small change to a large document writes only the member it changes.
import fc from "fast-check";
import { expect, test } from "vitest";
import { deploymentKeys } from "../../src/server/app.js";
import { CreateContextDocument, GetContextDocument, GetSnapshotDocument, MergeContextDocument, PatchContextDocument, RollbackContextDocument } from "../gql/graphql.js";
import { useTestServer, type ServerFixture } from "../helpers/app.js";

const HISTORY = 5;
const a = useTestServer({ historyLimit: HISTORY });
const b = useTestServer(() => ({ historyLimit: HISTORY, keyPrefix: a.config.keyPrefix }));
const one = useTestServer({ historyLimit: 1 });

type Doc = Record<string, unknown>;
type Write = { kind: "patch"; ops: unknown[] } | { kind: "merge"; merge: Doc } | { kind: "rollback"; back: number };

// Not resources or policy, whose values have rules of their own.
const names = fc.constantFrom("blackboard", "execution", "metadata", "a/b", "~x", "", "ü");
const value = fc.oneof(fc.integer(), fc.string({ maxLength: 5 }), fc.constant(null), fc.dictionary(fc.constantFrom("p", "q"), fc.integer(), { maxKeys: 2 }), fc.array(fc.integer(), { maxLength: 3 }));
const pointer = (name: string) => `/${name.replaceAll("~", "~0").replaceAll("/", "~1")}`;
const writes = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant("patch" as const), ops: fc.array(fc.oneof(
      fc.record({ op: fc.constant("add"), path: names.map(pointer), value }),
      fc.record({ op: fc.constant("remove-if-there"), path: names.map(pointer) }),
    ), { minLength: 1, maxLength: 3 }) }),
    fc.record({ kind: fc.constant("merge" as const), merge: fc.dictionary(names, fc.oneof(value, fc.constant(null)), { maxKeys: 3 }) }),
    fc.record({ kind: fc.constant("rollback" as const), back: fc.integer({ min: 1, max: HISTORY + 1 }) }),
  ),
  { minLength: 1, maxLength: 12 },
);

/** Sends `write` through `server`; the document it left (or null when it was refused or wrote nothing new). */
async function apply(server: ServerFixture, id: string, write: Write, current: { version: number; document: Doc }) {
  if (write.kind === "patch") {
    // A remove of a member that is not there is INVALID_PATCH: turn it into an add, so the write goes through.
    let doc = { ...current.document };
    const ops = write.ops.map((op) => {
      const o = op as { op: string; path: string; value?: unknown };
      const name = o.path.slice(1).replaceAll("~1", "/").replaceAll("~0", "~");
      if (o.op === "remove-if-there") {
        if (Object.hasOwn(doc, name)) {
          delete doc[name];
          return { op: "remove", path: o.path };
        }
        doc = { ...doc, [name]: 0 };
        return { op: "add", path: o.path, value: 0 };
      }
      doc = { ...doc, [name]: o.value };
      return o;
    });
    return (await server.data(PatchContextDocument, { id, patch: ops as never })).patchContext;
  }
  if (write.kind === "merge") return (await server.data(MergeContextDocument, { id, merge: write.merge })).mergeContext;
  const toVersion = Math.max(current.version - write.back, 1);
  const res = await server.request(RollbackContextDocument, { id, toVersion });
  if (res.errors) {
    expect(res.errors[0]!.extensions?.code).toBe("NOT_FOUND"); // older than retained
    return null;
  }
  return res.data!.rollbackContext;
}

let run = 0;
test("every retained version reads back as written, in its key order; older ones are NOT_FOUND; history keeps nothing more", async () => {
  await fc.assert(
    fc.asyncProperty(writes, async (sequence) => {
      const id = `storage-${run++}`;
      const first = { resources: { limits: { credits: 5 } }, blackboard: { notes: ["x"] }, execution: 1 };
      await a.data(CreateContextDocument, { id, document: first });
      const written = new Map<number, Doc>([[1, first]]);
      let current = { version: 1, document: first as Doc };
      for (const [i, write] of sequence.entries()) {
        const result = await apply(i % 2 ? a : b, id, write, current);
        if (result && result.version !== current.version) {
          current = { version: result.version, document: result.document as Doc };
          written.set(result.version, current.document);
        }
      }
      for (const server of [a, b]) {
        const read = (await server.data(GetContextDocument, { id })).context!;
        expect(read.version).toBe(current.version);
        expect(JSON.stringify(read.document)).toBe(JSON.stringify(current.document));
      }
      const oldest = Math.max(1, current.version - HISTORY + 1);
      for (const [version, document] of written) {
        const res = await a.request(GetSnapshotDocument, { id, version });
        if (version >= oldest) expect(JSON.stringify(res.data?.context?.snapshot), `version ${version}`).toBe(JSON.stringify(document));
        else expect(res.errors?.[0]?.extensions).toMatchObject({ code: "NOT_FOUND", oldestRetainedVersion: oldest });
      }
      // What each retained version after the oldest replaced, and nothing else.
      const fields = await a.redis.hkeys(deploymentKeys(a.config).context(id).snapshots);
      const versions = new Set(fields.map((f) => Number(/^\d+/.exec(f)![0])));
      expect([...versions].every((v) => v > oldest && v <= current.version), fields.join(" ")).toBe(true);
    }),
    { numRuns: 15 },
  );
});

test("with a history limit of 1, history keeps nothing at all", async () => {
  const id = "storage-limit-1";
  await one.data(CreateContextDocument, { id, document: { n: 0 } });
  for (let n = 1; n <= 5; n++) await one.data(MergeContextDocument, { id, merge: { n, [`m${n}`]: n } });
  expect(await one.redis.exists(deploymentKeys(one.config).context(id).snapshots)).toBe(0);
  expect((await one.data(GetSnapshotDocument, { id, version: 6 })).context!.snapshot).toEqual({ n: 5, m1: 1, m2: 2, m3: 3, m4: 4, m5: 5 });
});

test("a small change to a large document writes only the member it changes, and history keeps only that member's value before", async () => {
  const id = "storage-large";
  const notes = Array.from({ length: 2000 }, (_, i) => `observation ${i} `.repeat(5));
  await a.data(CreateContextDocument, { id, document: { blackboard: { notes }, execution: { counter: 0 } } });
  const k = deploymentKeys(a.config).context(id);
  const metaBefore = await a.redis.hget(k.meta, '."blackboard"');
  await a.data(PatchContextDocument, { id, patch: [{ op: "replace", path: "/execution/counter", value: 1 }] });
  expect(await a.redis.hget(k.meta, '."blackboard"')).toBe(metaBefore);
  expect(await a.redis.hgetall(k.snapshots)).toEqual({ "2": '"execution"', '2."execution"': '{"counter":0}' });
  expect(metaBefore!.length).toBeGreaterThan(100_000);
});
