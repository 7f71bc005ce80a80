// Swarms: the contexts list, searchable by id prefix, in id or recently-updated order, a page at
// a time (50, 200 or 1000 rows), each row kept current from the change feed while it is shown.
import { ErrorNote, Time, href, html, useEffect, useRef, useState } from "../lib/ui.js";

const ROW = `fragment Row on SwarmContext { id version updatedAt updatedBy activeAllocations heldLocks }`;
const LIST = `query($first: Int!, $after: String, $prefix: String, $order: ContextOrder) {
  contexts(first: $first, after: $after, idPrefix: $prefix, orderBy: $order) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { ...Row } }
  }
} ${ROW}`;
const CHANGES = `subscription($ids: [ID!]!) {
  contextChanges(contextIds: $ids, batch: { maxWaitMs: 200 }, maxBatchesPerSecond: 4) { changes { contextId } resync { contextId } }
}`;
const CREATED = `subscription($prefix: String) {
  contextChanges(idPrefix: $prefix, kinds: [CREATED], batch: { maxWaitMs: 500 }, maxBatchesPerSecond: 2) { changes { contextId } }
}`;

/** The server's largest page; a 1000-row page is read as pages of this. */
const SERVER_PAGE = 500;
/** Fewer than the server's alias bound (SWARM_MAX_ALIASES, 30 by default). */
const HEADS_PER_QUERY = 25;
const SIZES = [50, 200, 1000];
const ORDERS = [
  ["ID", "Id"],
  ["UPDATED_AT_DESC", "Recently updated"],
];
const DEBOUNCE_MS = 250;

/** One query reading the heads of `ids` (at most HEADS_PER_QUERY), aliased h0, h1, ... */
function headsQuery(ids) {
  const vars = ids.map((_, i) => `$i${i}: ID!`).join(", ");
  const fields = ids.map((_, i) => `h${i}: context(id: $i${i}) { ...Row }`).join(" ");
  return { query: `query(${vars}) { ${fields} } ${ROW}`, variables: Object.fromEntries(ids.map((id, i) => [`i${i}`, id])) };
}

/** The heads of `ids` as a Map id → head (null: the context is gone). */
async function readHeads(api, ids) {
  const heads = new Map();
  const chunks = [];
  for (let i = 0; i < ids.length; i += HEADS_PER_QUERY) chunks.push(ids.slice(i, i + HEADS_PER_QUERY));
  await Promise.all(
    chunks.map(async (chunk) => {
      const { query, variables } = headsQuery(chunk);
      const data = await api.query(query, variables);
      chunk.forEach((id, i) => heads.set(id, data[`h${i}`]));
    }),
  );
  return heads;
}

function Row({ row }) {
  return html`<tr class=${row.gone ? "gone" : undefined} data-id=${row.id}>
    <th scope="row"><a href=${href("swarms", row.id)}>${row.id}</a>${row.gone ? html` <span class="badge bad">deleted</span>` : null}</th>
    <td class="num" data-col="version">${row.version}</td>
    <td><${Time} at=${row.updatedAt} /></td>
    <td>${row.updatedBy}</td>
    <td class="num">${row.activeAllocations}</td>
    <td class="num">${row.heldLocks}</td>
  </tr>`;
}

// A row's element is made again only when the row changes: a change to one row, or a page
// arriving, does not re-render the others.
const rowElements = new WeakMap();
function rowElement(row) {
  let element = rowElements.get(row);
  if (!element) rowElements.set(row, (element = html`<${Row} key=${row.id} row=${row} />`));
  return element;
}

/** The list's settings kept in the location (so going back to the list restores them), without a navigation. */
function keepInLocation(prefix, order, size) {
  const params = new URLSearchParams();
  if (prefix) params.set("prefix", prefix);
  if (order !== "ID") params.set("order", order);
  if (size !== SIZES[0]) params.set("size", String(size));
  const search = params.toString();
  history.replaceState(null, "", `#/swarms${search ? `?${search}` : ""}`);
}

const FIRST_PAGE = [{ after: null, start: 0 }];

/** The swarms list page (#/swarms); its search, order and page size are kept in the location. */
export function SwarmList({ api, route }) {
  const params = route.params;
  const [typed, setTyped] = useState(params.get("prefix") ?? "");
  // What is listed; `stack` holds the pages walked so far: where each starts (its `after`
  // cursor and its first row's number). A new search, order or size starts at the first page.
  const [view, setView] = useState(() => ({
    prefix: typed.trim(),
    order: ORDERS.some(([o]) => o === params.get("order")) ? params.get("order") : "ID",
    size: SIZES.includes(Number(params.get("size"))) ? Number(params.get("size")) : SIZES[0],
    stack: FIRST_PAGE,
  }));
  const [page, setPage] = useState({ rows: [], start: 0, total: null, next: null, loading: true, error: null, ids: [] });
  const [created, setCreated] = useState(new Set());
  const [reloads, setReloads] = useState(0);
  // Why the rows stopped following the change feed, if they did.
  const [live, setLive] = useState(null);
  const [follows, setFollows] = useState(0);
  const load = useRef(0);
  const change = (settings) => setView((v) => ({ ...v, ...settings, stack: FIRST_PAGE }));

  useEffect(() => {
    const timer = setTimeout(() => typed.trim() !== view.prefix && change({ prefix: typed.trim() }), DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [typed]);
  const { prefix, order, size, stack } = view;
  useEffect(() => keepInLocation(prefix, order, size), [prefix, order, size]);

  const { after, start } = stack[stack.length - 1];
  useEffect(() => {
    const mine = ++load.current;
    const current = () => mine === load.current;
    setPage((p) => ({ ...p, loading: true, error: null }));
    setCreated(new Set());
    (async () => {
      let rows = [];
      let cursor = after;
      let more = true;
      // Follow endCursor until the page is full or the list ends: a server page may end short.
      while (more && rows.length < size) {
        const data = await api.query(LIST, { first: Math.min(SERVER_PAGE, size - rows.length), after: cursor, prefix: prefix || null, order });
        if (!current()) return;
        const { edges, pageInfo, totalCount } = data.contexts;
        rows = rows.concat(edges.map((e) => e.node));
        more = pageInfo.hasNextPage && pageInfo.endCursor != null;
        cursor = pageInfo.endCursor ?? cursor;
        const done = !more || rows.length >= size;
        setPage({ rows, start, total: totalCount, next: more ? cursor : null, loading: !done, error: null, ids: done ? rows.map((r) => r.id) : [] });
      }
    })().catch((error) => current() && setPage((p) => ({ ...p, loading: false, error })));
  }, [api, view, reloads]);

  // Live rows: the feed of the rows shown says which changed; their heads are read again, at most
  // a few times a second (the subscription's rate), whatever the write rate.
  const idsKey = page.ids.join("\n");
  useEffect(() => {
    const ids = page.ids;
    if (!ids.length) return;
    const pending = new Set();
    let reading = false;
    let stopped = false;
    const refresh = async () => {
      if (reading || !pending.size) return;
      reading = true;
      const asked = [...pending];
      pending.clear();
      let read = false;
      try {
        const heads = await readHeads(api, asked);
        read = true;
        if (!stopped) setPage((p) => ({ ...p, rows: p.rows.map((r) => (heads.has(r.id) ? (heads.get(r.id) ?? { ...r, gone: true }) : r)) }));
      } catch {
        // Asked again with the next batch of changes.
        for (const id of asked) pending.add(id);
      } finally {
        reading = false;
        // Changes that arrived during the read.
        if (read && !stopped) refresh();
      }
    };
    setLive(null);
    const unsubscribe = api.subscribe(CHANGES, { ids }, {
      next: ({ contextChanges: batch }) => {
        for (const c of batch.changes) pending.add(c.contextId);
        for (const r of batch.resync) pending.add(r.contextId);
        refresh();
      },
      error: (error) => !stopped && setLive(error),
    });
    // Changes made while the WebSocket was down never arrive: read every row shown again.
    const stopReconnect = api.onReconnect(() => {
      for (const id of ids) pending.add(id);
      refresh();
    });
    return () => {
      stopped = true;
      unsubscribe();
      stopReconnect();
    };
  }, [api, idsKey, follows]);

  // Swarms created since the list was read (matching the search), offered as a reload.
  useEffect(() => {
    if (page.loading) return;
    return api.subscribe(CREATED, { prefix: prefix || null }, {
      next: ({ contextChanges: batch }) => setCreated((seen) => new Set([...seen, ...batch.changes.map((c) => c.contextId)])),
      error: () => {},
    });
  }, [api, prefix, idsKey, page.loading]);

  // The range of the rows shown (a page being read replaces them when it arrives).
  const { rows, total, next, loading, error } = page;
  const range = rows.length ? `${(page.start + 1).toLocaleString()}–${(page.start + rows.length).toLocaleString()}` : "0";
  return html`<section aria-labelledby="swarms-title">
    <h1 id="swarms-title">Swarms</h1>
    <form class="row list-controls" onSubmit=${(e) => e.preventDefault()} role="search">
      <label for="swarm-prefix">Id starts with</label>
      <input id="swarm-prefix" type="search" autocomplete="off" spellcheck="false" value=${typed} onInput=${(e) => setTyped(e.target.value)} />
      <label for="swarm-order">Order</label>
      <select id="swarm-order" value=${order} onChange=${(e) => change({ order: e.target.value })}>
        ${ORDERS.map(([value, label]) => html`<option value=${value}>${label}</option>`)}
      </select>
      <label for="swarm-size">Rows per page</label>
      <select id="swarm-size" value=${size} onChange=${(e) => change({ size: Number(e.target.value) })}>
        ${SIZES.map((n) => html`<option value=${n}>${n.toLocaleString()}</option>`)}
      </select>
    </form>
    <div class="row pager">
      <span data-testid="list-range" aria-live="polite">${range} of ${total === null ? "many" : total.toLocaleString()}</span>
      <button type="button" class="secondary" disabled=${stack.length === 1 || loading} onClick=${() => setView({ ...view, stack: stack.slice(0, -1) })}>Previous</button>
      <button type="button" class="secondary" disabled=${!next || loading} onClick=${() => setView({ ...view, stack: [...stack, { after: next, start: page.start + rows.length }] })}>Next</button>
      ${loading ? html`<span class="muted">loading…</span>` : null}
      ${created.size
        ? html`<button type="button" class="link" data-testid="new-swarms" onClick=${() => setReloads(reloads + 1)}>
            ${created.size.toLocaleString()} new ${created.size === 1 ? "swarm" : "swarms"}: reload
          </button>`
        : null}
    </div>
    <${ErrorNote} error=${error} />
    ${live
      ? html`<p class="notice row">
          The rows are no longer updated live (${live.code ?? "ERROR"}: ${live.message}).
          <button type="button" class="secondary" onClick=${() => setFollows(follows + 1)}>Follow them again</button>
        </p>`
      : null}
    <div class="table-wrap">
      <table aria-label="Swarms" class="swarms">
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col" class="num">Version</th>
            <th scope="col">Updated</th>
            <th scope="col">Updated by</th>
            <th scope="col" class="num">Active allocations</th>
            <th scope="col" class="num">Held locks</th>
          </tr>
        </thead>
        <tbody>${rows.map(rowElement)}</tbody>
      </table>
    </div>
    ${!loading && !rows.length && !error ? html`<p class="muted">No swarm${prefix ? html` has an id starting with <code>${prefix}</code>` : null}.</p>` : null}
  </section>`;
}
