// The live feed's tail: one contextChanges subscription, the rows it shows (newest first,
// bounded), and pause / resume with nothing lost and nothing twice.
//
// How pause and resume keep every change exactly once, in seq order per context:
// - Every change taken (shown, or held while paused) moves its context's cursor (`taken`); a
//   change at or below its context's cursor is a duplicate and is dropped. Every (re)subscribe
//   asks `after` those cursors, so a WebSocket reconnect resumes where the tail was.
// - Pausing keeps the subscription: what arrives is held, not shown, and shown in arrival order
//   (seq order per context) on resume. At pause time the tail also reads the current seq of the
//   contexts it has no cursor for yet (`pauseSeqs`), so that it has a cursor for every context.
// - Holding is bounded (`hold` changes). Past the bound, the tail lets the subscription go and
//   keeps only cursors: a context's last taken seq, else its seq read at pause time. On resume it
//   shows what it held, then subscribes again `after` those cursors: the server replays every
//   matching change after each, then goes on live. It waits SPILL_GRACE_MS after the pause-time
//   read before letting go, so that changes committed before that read, still on their way
//   (batching, rate limit: a few hundred ms), have arrived and moved their cursors: a context's
//   read seq is only a safe cursor once nothing before it is still in flight.
// - Contexts that appear after the pause-time read (a prefix or whole-deployment tail) have no
//   cursor: on resume after letting go, the tail looks up those updated since then, and asks
//   from seq 0 for the ones created since (all of their changes are new). A context it cannot
//   place (past the MAX_CURSORS contexts read at pause, not created since) is named in a notice:
//   never a silent gap.

/** Rows kept (and so in the DOM) at most. */
export const KEEP_ROWS = 500;
/** Changes held while paused before the subscription is let go (cursors kept instead). */
export const HOLD_CHANGES = 5000;
const SPILL_GRACE_MS = 1000;
/** Cursors one subscription may give (the server's bound on `after`), and contexts whose seq a pause reads at most. */
const MAX_CURSORS = 1000;
/** Before subscribing again after the server ended the stream with cursors. */
const RESUBSCRIBE_MS = 1000;

const CHANGES = `subscription($contextIds: [ID!], $idPrefix: String, $kinds: [ChangeKind!], $paths: [String!], $actors: [String!], $after: [CursorInput!]) {
  contextChanges(contextIds: $contextIds, idPrefix: $idPrefix, kinds: $kinds, paths: $paths, actors: $actors, after: $after, batch: { maxWaitMs: 100 }, maxBatchesPerSecond: 10) {
    changes { contextId seq version kind actor at paths reason allocation { id status holder } lock { name holder token } }
    resync { contextId seq version } } }`;
const PAGE_OF_SEQS = `query($after: String, $idPrefix: String) {
  contexts(first: 500, after: $after, idPrefix: $idPrefix) { edges { node { id seq } } pageInfo { hasNextPage endCursor } } }`;
const CREATED_SINCE = `query($since: DateTime!, $idPrefix: String) {
  contexts(first: 500, idPrefix: $idPrefix, orderBy: UPDATED_AT_DESC, updatedAfter: $since) { edges { node { id createdAt } } pageInfo { hasNextPage } } }`;
/** Ids per query when reading the seqs of named contexts (one alias each). */
const IDS_PER_QUERY = 10;

/** The seqs of named contexts (0 for one that does not exist: all of its feed will be new). */
async function seqsOf(api, ids) {
  const seqs = new Map();
  for (let i = 0; i < ids.length; i += IDS_PER_QUERY) {
    const chunk = ids.slice(i, i + IDS_PER_QUERY);
    const query = `query(${chunk.map((_, j) => `$i${j}: ID!`).join(", ")}) { ${chunk.map((_, j) => `c${j}: context(id: $i${j}) { seq }`).join(" ")} }`;
    const data = await api.query(query, Object.fromEntries(chunk.map((id, j) => [`i${j}`, id])));
    chunk.forEach((id, j) => seqs.set(id, data[`c${j}`]?.seq ?? 0));
  }
  return { seqs, complete: true };
}

/** The seqs of the contexts of a prefix (or all), up to MAX_CURSORS of them. */
async function seqsWithPrefix(api, idPrefix) {
  const seqs = new Map();
  let after = null;
  for (;;) {
    const { contexts } = await api.query(PAGE_OF_SEQS, { after, idPrefix });
    for (const { node } of contexts.edges) seqs.set(node.id, node.seq);
    if (!contexts.pageInfo.hasNextPage) return { seqs, complete: true };
    if (seqs.size >= MAX_CURSORS) return { seqs, complete: false };
    after = contexts.pageInfo.endCursor;
  }
}

/**
 * A tail of the feed that `filter` ({ contextIds, idPrefix, kinds, paths, actors }, each null or
 * absent for any) selects. `changed()` hears every change of what it shows. `hold` bounds what a
 * pause holds (HOLD_CHANGES by default). Call start(), then pause(), resume(), stop().
 */
export function createFeedTail(api, filter, changed, hold = HOLD_CHANGES) {
  const variables = {
    contextIds: filter.contextIds?.length ? filter.contextIds : null,
    idPrefix: filter.idPrefix || null,
    kinds: filter.kinds?.length ? filter.kinds : null,
    paths: filter.paths?.length ? filter.paths : null,
    actors: filter.actors?.length ? filter.actors : null,
  };
  const taken = new Map();
  let pauseSeqs = new Map();
  let rows = [];
  let held = [];
  let serial = 0;
  let unsubscribe = null;
  let paused = false;
  let spilled = false;
  let pauseRead = null; // { at: ms, done: promise, complete }
  let spillTimer = null;
  let stopped = false;
  const state = { error: null, notice: null };

  const cursors = () => {
    const all = new Map(pauseSeqs);
    for (const [id, seq] of taken) all.set(id, seq);
    // More than a subscription may give: the resume says so (placeNewContexts).
    return [...all].slice(0, MAX_CURSORS).map(([contextId, seq]) => ({ contextId, seq }));
  };

  function subscribe() {
    unsubscribe = api.subscribe(CHANGES, () => ({ ...variables, after: cursors() }), {
      next: ({ contextChanges: batch }) => receive(batch),
      error: ended,
    });
  }

  function receive(batch) {
    const fresh = [];
    for (const r of batch.resync) {
      taken.set(r.contextId, Math.max(taken.get(r.contextId) ?? 0, r.seq));
      fresh.push({ type: "resync", key: `r${serial++}`, ...r });
    }
    for (const c of batch.changes) {
      if (c.seq <= (taken.get(c.contextId) ?? -1)) continue;
      taken.set(c.contextId, c.seq);
      fresh.push({ type: "change", key: `c${serial++}`, ...c });
    }
    if (fresh.length === 0) return;
    if (paused) {
      held.push(...fresh);
      if (held.length > hold && !spilled) spillSoon();
    } else {
      show(fresh);
    }
    changed();
  }

  function show(list) {
    rows = [...list.reverse(), ...rows].slice(0, KEEP_ROWS);
  }

  /** The server ended the stream: with cursors (fell behind, shutting down), subscribe again from them. */
  function ended(err) {
    unsubscribe = null;
    const after = err?.extensions?.after;
    if (Array.isArray(after) && !stopped) {
      for (const { contextId, seq } of after) taken.set(contextId, Math.max(taken.get(contextId) ?? 0, seq));
      state.notice = `The server ended the feed (${err.code}); resuming from where it stopped.`;
      setTimeout(() => !stopped && !unsubscribe && !spilled && subscribe(), RESUBSCRIBE_MS);
    } else {
      state.error = err;
    }
    changed();
  }

  function spillSoon() {
    if (spillTimer) return;
    const wait = pauseRead ? Math.max(0, pauseRead.at + SPILL_GRACE_MS - Date.now()) : SPILL_GRACE_MS;
    spillTimer = setTimeout(async () => {
      spillTimer = null;
      // Cursors for every context first: the pause-time read must be in.
      await pauseRead?.done;
      if (!paused || stopped) return;
      spilled = true;
      unsubscribe?.();
      unsubscribe = null;
      changed();
    }, wait);
  }

  /** After letting go: cursors for contexts created since the pause-time read (their whole feed). */
  async function placeNewContexts() {
    if (variables.contextIds || !pauseRead) return;
    const since = new Date(pauseRead.at).toISOString();
    const { contexts } = await api.query(CREATED_SINCE, { since, idPrefix: variables.idPrefix });
    const unplaced = [];
    for (const { node } of contexts.edges) {
      if (taken.has(node.id) || pauseSeqs.has(node.id)) continue;
      if (Date.parse(node.createdAt) >= pauseRead.at) pauseSeqs.set(node.id, 0);
      else unplaced.push(node.id);
    }
    const placed = new Set([...taken.keys(), ...pauseSeqs.keys()]).size;
    if (unplaced.length > 0 || contexts.pageInfo.hasNextPage || !pauseRead.complete || placed > MAX_CURSORS) {
      state.notice = `The pause was too long to hold and spanned more contexts than the console tracks: changes made while paused may be missing for ${unplaced.length ? unplaced.join(", ") : "contexts past the first " + MAX_CURSORS}.`;
    }
  }

  return {
    get rows() {
      return rows;
    },
    get heldCount() {
      return held.length;
    },
    get paused() {
      return paused;
    },
    get spilled() {
      return spilled;
    },
    state,
    start() {
      subscribe();
    },
    /** Stops the display; what arrives is held (see above). */
    pause() {
      if (paused) return;
      paused = true;
      const at = Date.now();
      const unknown = variables.contextIds ? variables.contextIds.filter((id) => !taken.has(id)) : null;
      const read = unknown ? seqsOf(api, unknown) : seqsWithPrefix(api, variables.idPrefix);
      pauseRead = { at, complete: true, done: null };
      pauseRead.done = read.then(
        ({ seqs, complete }) => {
          for (const [id, seq] of seqs) if (!taken.has(id)) pauseSeqs.set(id, seq);
          pauseRead.complete = complete;
        },
        (err) => {
          state.error = err;
          pauseRead.complete = false;
        },
      );
      changed();
    },
    /** Shows what was held, and when the subscription was let go, subscribes again after the cursors. */
    async resume() {
      if (!paused) return;
      clearTimeout(spillTimer);
      spillTimer = null;
      paused = false;
      show(held);
      held = [];
      if (spilled) {
        try {
          await placeNewContexts();
        } catch (err) {
          state.error = err;
        }
        spilled = false;
        if (!stopped) subscribe();
      }
      changed();
    },
    stop() {
      stopped = true;
      clearTimeout(spillTimer);
      unsubscribe?.();
    },
  };
}
