// The live feed (#/feed): a tail of contextChanges, newest at the top, filtered by the route's
// query (ids, prefix, kinds, paths, actors), with pause and resume that lose nothing
// (lib/feed-tail.js says how).
import { HOLD_CHANGES, KEEP_ROWS, createFeedTail } from "../lib/feed-tail.js";
import { ErrorNote, Time, href, html, useEffect, useRef, useState } from "../lib/ui.js";
import { CHANGE_KINDS, DOCUMENT_KINDS } from "../lib/change-kinds.js";

const PATCH = `query($id: ID!, $after: Int!) { context(id: $id) { history(afterSeq: $after, limit: 1) { seq patch } } }`;

/** A comma- or space-separated list. */
const listOf = (text) => (text ?? "").split(/[\s,]+/).filter(Boolean);

/** The filter in the route's query: ?ids=a,b&prefix=p&kinds=UPDATED&paths=/x&actors=agent-1 (and hold=N, the pause bound). */
function filterOf(params) {
  return {
    contextIds: listOf(params.get("ids")),
    idPrefix: params.get("prefix") ?? "",
    kinds: listOf(params.get("kinds")).filter((k) => CHANGE_KINDS.includes(k)),
    paths: listOf(params.get("paths")),
    actors: listOf(params.get("actors")),
  };
}

function FilterForm({ filter }) {
  const [ids, setIds] = useState(filter.contextIds.join(", "));
  const [prefix, setPrefix] = useState(filter.idPrefix);
  const [kinds, setKinds] = useState(new Set(filter.kinds));
  const [paths, setPaths] = useState(filter.paths.join(", "));
  const [actors, setActors] = useState(filter.actors.join(", "));
  const apply = (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    const set = (name, list) => list.length && params.set(name, list.join(","));
    set("ids", listOf(ids));
    if (prefix.trim()) params.set("prefix", prefix.trim());
    set("kinds", [...kinds]);
    set("paths", listOf(paths));
    set("actors", listOf(actors));
    location.hash = `#/feed${params.size ? `?${params}` : ""}`;
  };
  const toggle = (kind) => {
    const next = new Set(kinds);
    if (next.has(kind)) next.delete(kind);
    else next.add(kind);
    setKinds(next);
  };
  return html`<form class="feed-filter" onSubmit=${apply} aria-label="Feed filter">
    <div class="row">
      <label for="feed-ids">Context ids</label>
      <input id="feed-ids" value=${ids} onInput=${(e) => setIds(e.target.value)} placeholder="swarm-1, swarm-2" />
      <label for="feed-prefix">or id prefix</label>
      <input id="feed-prefix" value=${prefix} onInput=${(e) => setPrefix(e.target.value)} placeholder="swarm-" />
    </div>
    <div class="row">
      <label for="feed-paths">Paths</label>
      <input id="feed-paths" value=${paths} onInput=${(e) => setPaths(e.target.value)} placeholder="/blackboard, /execution" />
      <label for="feed-actors">Actors</label>
      <input id="feed-actors" value=${actors} onInput=${(e) => setActors(e.target.value)} placeholder="planner" />
    </div>
    <fieldset class="kinds">
      <legend>Kinds (none: all)</legend>
      ${CHANGE_KINDS.map(
        (kind) => html`<label class="check" key=${kind}><input type="checkbox" checked=${kinds.has(kind)} onChange=${() => toggle(kind)} /> ${kind}</label>`,
      )}
    </fieldset>
    <button type="submit">Apply filter</button>
  </form>`;
}

function Detail({ api, row }) {
  const [state, setState] = useState({ patch: null, error: null });
  useEffect(() => {
    if (!DOCUMENT_KINDS.has(row.kind)) return;
    api.query(PATCH, { id: row.contextId, after: row.seq - 1 }).then(
      (data) => {
        const entry = data.context?.history?.[0];
        setState({ patch: entry?.seq === row.seq ? entry.patch : undefined, error: null });
      },
      (error) => setState({ patch: null, error }),
    );
  }, [row.key]);
  const shown = DOCUMENT_KINDS.has(row.kind)
    ? state.patch === undefined
      ? "This change is no longer retained (or the context is gone)."
      : state.patch && JSON.stringify(state.patch, null, 2)
    : JSON.stringify(row.allocation ?? row.lock ?? { reason: row.reason }, null, 2);
  return html`<div class="detail">
    <${ErrorNote} error=${state.error} />
    ${shown ? html`<pre>${shown}</pre>` : state.error ? null : html`<p class="muted">Loading…</p>`}
  </div>`;
}

function Row({ api, row, open, onToggle }) {
  if (row.type === "resync") {
    return html`<tr class="resync" data-context=${row.contextId}>
      <td colspan="8"><strong>Resync</strong>: changes of <a href=${href("swarms", row.contextId)}>${row.contextId}</a> were lost to retention or a
        fall behind. Re-read context ${row.contextId}, at version ${row.version} as of seq ${row.seq}.</td>
    </tr>`;
  }
  const detailId = `detail-${row.key}`;
  return html`<tr data-context=${row.contextId} data-seq=${row.seq} data-kind=${row.kind}>
      <td><a href=${href("swarms", row.contextId)}>${row.contextId}</a></td>
      <td class="num">${row.seq}</td>
      <td class="num">${row.version}</td>
      <td>${row.kind}</td>
      <td>${row.actor}</td>
      <td><${Time} at=${row.at} /></td>
      <td class="paths">${row.paths.length ? row.paths.map((p) => html`<code>${p || "(document)"}</code> `) : html`<span class="muted">—</span>`}</td>
      <td><button type="button" class="link" aria-expanded=${open} aria-controls=${detailId} onClick=${onToggle}
        aria-label=${`${open ? "Hide" : "Show"} ${DOCUMENT_KINDS.has(row.kind) ? "the patch" : "the details"} of ${row.contextId} seq ${row.seq}`}>${open ? "hide" : DOCUMENT_KINDS.has(row.kind) ? "patch" : "details"}</button></td>
    </tr>
    ${open ? html`<tr id=${detailId} class="detail-row"><td colspan="8"><${Detail} api=${api} row=${row} /></td></tr>` : null}`;
}

export function LiveFeed({ api, route }) {
  const query = route.params.toString();
  const filter = filterOf(route.params);
  const hold = Number(route.params.get("hold")) || HOLD_CHANGES;
  const tail = useRef(null);
  const [, setTick] = useState(0);
  const [open, setOpen] = useState(new Set());
  useEffect(() => {
    const t = createFeedTail(api, filter, () => setTick((n) => n + 1), hold);
    tail.current = t;
    setOpen(new Set());
    t.start();
    setTick((n) => n + 1);
    return () => t.stop();
  }, [api, query]);
  const t = tail.current;
  if (!t) return null;
  const toggle = (key) => {
    const next = new Set(open);
    if (next.has(key)) next.delete(key);
    else next.add(key);
    setOpen(next);
  };
  const status = !t.paused
    ? "Live"
    : t.spilled
      ? `Paused: more changed than a pause holds; on resume the console shows the ${t.heldCount.toLocaleString()} held and reads the rest again from the server.`
      : `Paused: ${t.heldCount.toLocaleString()} ${t.heldCount === 1 ? "change" : "changes"} waiting.`;
  return html`<section aria-labelledby="feed-title">
    <h1 id="feed-title">Live feed</h1>
    <${FilterForm} key=${query} filter=${filter} />
    <div class="row feed-controls">
      <button type="button" aria-pressed=${t.paused} onClick=${() => (t.paused ? t.resume() : t.pause())}>${t.paused ? "Resume" : "Pause"}</button>
      <span role="status" data-testid="feed-status" class=${t.paused ? "paused" : "live"}>${status}</span>
      <span class="muted">Newest first; the last ${KEEP_ROWS} are kept.</span>
    </div>
    ${t.state.notice ? html`<p class="notice" role="status">${t.state.notice}</p>` : null}
    <${ErrorNote} error=${t.state.error} />
    <div class="table-wrap">
      <table aria-label="Changes" class="feed">
        <thead><tr><th scope="col">Context</th><th scope="col" class="num">Seq</th><th scope="col" class="num">Version</th><th scope="col">Kind</th><th scope="col">Actor</th><th scope="col">At</th><th scope="col">Paths</th><th scope="col"><span class="sr-only">Details</span></th></tr></thead>
        <tbody>
          ${t.rows.map((row) => html`<${Row} key=${row.key} api=${api} row=${row} open=${open.has(row.key)} onToggle=${() => toggle(row.key)} />`)}
        </tbody>
      </table>
    </div>
    ${t.rows.length === 0 ? html`<p class="muted" data-testid="feed-empty">No change yet${t.paused ? " shown" : ""}: changes appear here as they happen.</p>` : null}
  </section>`;
}
