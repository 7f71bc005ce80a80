// Following one context's change feed from a known seq, so that a WebSocket reconnect resumes
// where the last batch left off instead of from "now".

/**
 * Subscribes to context `id`'s changes of `kinds` after `seq`, selecting `fields` of each change
 * besides its seq; `sink.next(batch)` gets each batch ({ changes, resync }), `sink.error(err)`
 * the end of the stream. Every (re)subscribe asks from the highest seq seen so far. Returns the
 * function that stops it.
 */
export function followContext(api, { id, seq, kinds, fields = "", maxWaitMs = 100, perSecond = 5 }, sink) {
  let cursor = seq;
  const document = `subscription($id: ID!, $after: [CursorInput!]) {
    contextChanges(contextIds: [$id], kinds: [${kinds.join(", ")}], after: $after, batch: { maxWaitMs: ${maxWaitMs} }, maxBatchesPerSecond: ${perSecond}) {
      changes { seq ${fields} } resync { seq } } }`;
  return api.subscribe(document, () => ({ id, after: [{ contextId: id, seq: cursor }] }), {
    next: ({ contextChanges: batch }) => {
      for (const c of [...batch.changes, ...batch.resync]) cursor = Math.max(cursor, c.seq);
      sink.next(batch);
    },
    error: sink.error,
  });
}
