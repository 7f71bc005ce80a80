// Proves the document's split by member: a stored document's JSON is what JSON.stringify writes, and a change's byte count, kept from its base's without serializing the rest, is the new document's JSON size.
import fc from "fast-check";
import { expect, test } from "vitest";
import type { JsonObject } from "../../src/json/types.js";
import { documentChange, storedDocument } from "../../src/store/document-parts.js";

const limits = { maxDocumentBytes: 10_000_000, maxDocumentDepth: 64 };
const documents = fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }) as fc.Arbitrary<JsonObject>;

test("a stored document's JSON is JSON.stringify's, and a change's bytes are the new document's", () => {
  fc.assert(
    fc.property(documents, documents, (base, next) => {
      const stored = storedDocument(base, limits);
      expect(stored.json).toBe(JSON.stringify(base));
      expect(stored.bytes).toBe(Buffer.byteLength(JSON.stringify(base)));
      const change = documentChange(base, stored.bytes, next, limits);
      if (change.order !== "") expect(change.bytes).toBe(Buffer.byteLength(JSON.stringify(next)));
    }),
    { numRuns: 500 },
  );
});
