// History: the change feed newest first, a page at a time, filtered by kind, actor and path; each
// entry's patch as a diff; the diff between any two retained versions; and, for admins, rollback
// to a version after a confirmation that names the version it will write.
import { ErrorNote, Time, html, useEffect, useRef, useState } from "../lib/ui.js";
import { parsePointers } from "../lib/json-diff.js";
import { PatchView } from "../lib/patch-view.js";
import { CHANGE_KINDS, DOCUMENT_KINDS } from "../lib/change-kinds.js";

const PAGE = `query($id: ID!, $before: Int, $kinds: [ChangeKind!], $actors: [String!], $paths: [String!]) {
  context(id: $id) {
    historyPage(last: 50, beforeSeq: $before, kinds: $kinds, actors: $actors, paths: $paths) {
      changes { seq version kind actor at reason paths patch allocation { id status } lock { name holder token } }
      scannedTo hasMore
    }
  }
}`;
const DIFF = `query($id: ID!, $from: Int!, $to: Int!) { context(id: $id) { diff(fromVersion: $from, toVersion: $to) { op path from value } } }`;
const ROLLBACK = `mutation($id: ID!, $to: Int!, $expected: Int!, $reason: String, $dryRun: Boolean) {
  rollbackContext(id: $id, toVersion: $to, expectedVersion: $expected, reason: $reason, dryRun: $dryRun) { version }
}`;

const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

/** A refusal of a version read: NOT_FOUND names the retained range, shown plainly. */
function VersionError({ error }) {
  const ext = error?.extensions ?? {};
  if (error?.code === "NOT_FOUND" && ext.oldestRetainedVersion != null) {
    return html`<p class="error" role="alert" data-testid="not-retained">
      Version ${ext.version} is not retained: the oldest retained version is <strong>${ext.oldestRetainedVersion}</strong>${ext.currentVersion != null ? `, the newest ${ext.currentVersion}` : ""}.
    </p>`;
  }
  return html`<${ErrorNote} error=${error} />`;
}

function Filters({ onApply }) {
  const [kinds, setKinds] = useState(new Set());
  const [actors, setActors] = useState("");
  const [paths, setPaths] = useState("");
  const submit = (event) => {
    event.preventDefault();
    onApply({ kinds: kinds.size ? CHANGE_KINDS.filter((k) => kinds.has(k)) : null, actors: list(actors).length ? list(actors) : null, paths: parsePointers(paths).length ? parsePointers(paths) : null });
  };
  const toggle = (kind) => {
    const next = new Set(kinds);
    next.has(kind) ? next.delete(kind) : next.add(kind);
    setKinds(next);
  };
  return html`<form class="history-filters" onSubmit=${submit} aria-label="History filters">
    <fieldset class="kinds">
      <legend>Kinds (none checked: all)</legend>
      ${CHANGE_KINDS.map(
        (kind) => html`<label key=${kind}><input type="checkbox" checked=${kinds.has(kind)} onChange=${() => toggle(kind)} /> ${kind}</label>`,
      )}
    </fieldset>
    <div class="row">
      <label for="history-actors">Actors</label>
      <input id="history-actors" type="text" placeholder="comma separated" value=${actors} onInput=${(e) => setActors(e.target.value)} />
      <label for="history-paths">Paths</label>
      <input id="history-paths" type="text" placeholder="/blackboard, /policy" value=${paths} onInput=${(e) => setPaths(e.target.value)} />
      <button type="submit">Filter</button>
    </div>
  </form>`;
}

/** The confirmation step of a rollback: what it will write, then the write. */
function RollbackConfirm({ api, id, ask, onDone, onCancel }) {
  const [state, setState] = useState({ writes: null, error: null, busy: true, done: null });
  const [reason, setReason] = useState("");
  const confirmRef = useRef(null);
  const variables = { id, to: ask.toVersion, expected: ask.expected };
  // A dry run first: it says which version the rollback would write (or that it would write none).
  useEffect(() => {
    api.query(ROLLBACK, { ...variables, dryRun: true }).then(
      ({ rollbackContext }) => setState({ writes: rollbackContext.version, error: null, busy: false, done: null }),
      (error) => setState({ writes: null, error, busy: false, done: null }),
    );
  }, [api, id, ask]);
  useEffect(() => {
    if (state.writes !== null) confirmRef.current?.focus();
  }, [state.writes]);
  const confirm = async () => {
    setState({ ...state, busy: true });
    try {
      const { rollbackContext } = await api.query(ROLLBACK, { ...variables, reason: reason.trim() || null, dryRun: false });
      setState({ ...state, busy: false, done: rollbackContext.version });
      onDone();
    } catch (error) {
      setState({ ...state, busy: false, error });
    }
  };
  const same = state.writes === ask.expected;
  return html`<div class="notice confirm" role="group" aria-label="Confirm rollback">
    ${state.done !== null
      ? html`<p role="status">Rolled back: version ${state.done} holds the document of version ${ask.toVersion}.</p>`
      : state.writes === null
        ? state.error ? null : html`<p class="muted">Checking version ${ask.toVersion}…</p>`
        : same
          ? html`<p>Version ${ask.toVersion}'s document equals the current one: rolling back would write nothing.</p>`
          : html`<p><strong>Roll back to version ${ask.toVersion}? This writes version ${state.writes}.</strong></p>
              <div class="row">
                <label for="rollback-reason">Reason (optional)</label>
                <input id="rollback-reason" type="text" value=${reason} onInput=${(e) => setReason(e.target.value)} />
              </div>`}
    <${VersionError} error=${state.error} />
    <div class="row">
      ${state.writes !== null && !same && state.done === null
        ? html`<button type="button" class="danger" ref=${confirmRef} disabled=${state.busy} onClick=${confirm}>Confirm rollback to version ${ask.toVersion}</button>`
        : null}
      <button type="button" class="secondary" onClick=${onCancel}>${state.done !== null ? "Close" : "Cancel"}</button>
    </div>
  </div>`;
}

function Entry({ change, canRollback, rollbackHere, confirm }) {
  const c = change;
  return html`<li class="entry" data-seq=${c.seq}>
    <div class="entry-head">
      <span class="seq">#${c.seq}</span>
      <span class=${`kind kind-${c.kind}`}>${c.kind}</span>
      <span>version ${c.version}</span>
      <span>by <strong class="actor">${c.actor}</strong></span>
      <${Time} at=${c.at} />
      ${c.reason ? html`<span class="reason">“${c.reason}”</span>` : null}
    </div>
    ${c.allocation ? html`<p class="entry-detail">Allocation <code>${c.allocation.id}</code>, now ${c.allocation.status.toLowerCase()}</p>` : null}
    ${c.lock ? html`<p class="entry-detail">Lock <code>${c.lock.name}</code> of ${c.lock.holder}, token ${c.lock.token}</p>` : null}
    ${DOCUMENT_KINDS.has(c.kind) || c.patch?.length ? html`<${PatchView} ops=${c.patch} label=${`Patch of #${c.seq}`} />` : null}
    ${canRollback ? html`<div class="row"><button type="button" class="secondary" onClick=${() => rollbackHere(c)}>Roll back to version ${c.version}</button></div>` : null}
    ${confirm}
  </li>`;
}

/** The History tab: the change feed newest first; rollback controls for admins only. */
export function History({ api, me, id, head }) {
  const admin = me.role === "ADMIN";
  const [filters, setFilters] = useState({ kinds: null, actors: null, paths: null });
  const [page, setPage] = useState({ changes: [], scannedTo: null, hasMore: false, loading: true, error: null, seq: null });
  const [reloads, setReloads] = useState(0);
  const [rollback, setRollback] = useState(null);
  const [typedVersion, setTypedVersion] = useState("");
  const [versions, setVersions] = useState({ from: String(Math.max(1, head.version - 1)), to: String(head.version) });
  const [diff, setDiff] = useState(null);
  const reading = useRef(0);

  /** Reads the page before `before` (null: the newest), appending it to what is shown or not. */
  const read = async (before, append) => {
    const mine = ++reading.current;
    const seq = head.seq;
    setPage((p) => ({ ...p, loading: true, error: null }));
    try {
      const { context } = await api.query(PAGE, { id, before, ...filters });
      if (mine !== reading.current) return;
      const { changes, scannedTo, hasMore } = context.historyPage;
      setPage((p) => ({ changes: append ? [...p.changes, ...changes] : changes, scannedTo, hasMore, loading: false, error: null, seq: append ? p.seq : seq }));
    } catch (error) {
      if (mine === reading.current) setPage((p) => ({ ...p, loading: false, error }));
    }
  };
  useEffect(() => {
    read(null, false);
  }, [api, id, filters, reloads]);

  const compare = async (event) => {
    event.preventDefault();
    const from = Number(versions.from);
    const to = Number(versions.to);
    setDiff({ from, to, ops: null, error: null });
    try {
      const { context } = await api.query(DIFF, { id, from, to });
      setDiff({ from, to, ops: context.diff, error: null });
    } catch (error) {
      setDiff({ from, to, ops: null, error });
    }
  };
  const ask = (toVersion, at) => setRollback({ toVersion, expected: head.version, at });
  const confirmFor = (at) =>
    rollback?.at === at
      ? html`<${RollbackConfirm} key=${`${rollback.toVersion}@${rollback.expected}`} api=${api} id=${id} ask=${rollback} onDone=${() => setReloads((n) => n + 1)} onCancel=${() => setRollback(null)} />`
      : null;

  const newer = page.seq !== null && head.seq > page.seq;
  return html`<section aria-labelledby="history-title" class="history">
    <h2 id="history-title">History</h2>
    <${Filters} onApply=${setFilters} />

    <details class="tools">
      <summary>Diff two versions${admin ? ", roll back to a version" : ""}</summary>
      <form class="row" onSubmit=${compare} aria-label="Diff two versions">
        <label for="diff-from">From version</label>
        <input id="diff-from" type="number" min="1" required value=${versions.from} onInput=${(e) => setVersions({ ...versions, from: e.target.value })} />
        <label for="diff-to">To version</label>
        <input id="diff-to" type="number" min="1" required value=${versions.to} onInput=${(e) => setVersions({ ...versions, to: e.target.value })} />
        <button type="submit">Diff</button>
      </form>
      ${diff
        ? html`<div class="version-diff" aria-label=${`Diff of versions ${diff.from} and ${diff.to}`}>
            <${VersionError} error=${diff.error} />
            ${diff.ops ? html`<${PatchView} ops=${diff.ops} label=${`Changes from version ${diff.from} to ${diff.to}`} empty="The two versions' documents are equal." />` : null}
          </div>`
        : null}
      ${admin
        ? html`<form class="row" aria-label="Roll back to a version" onSubmit=${(e) => (e.preventDefault(), ask(Number(typedVersion), "typed"))}>
              <label for="rollback-version">Roll back to version</label>
              <input id="rollback-version" type="number" min="1" required value=${typedVersion} onInput=${(e) => setTypedVersion(e.target.value)} />
              <button type="submit" class="secondary">Roll back…</button>
            </form>
            ${confirmFor("typed")}`
        : null}
    </details>

    <div class="row">
      ${newer ? html`<button type="button" class="link" onClick=${() => setReloads((n) => n + 1)}>Newer changes (seq ${head.seq}): show</button>` : null}
      ${page.loading ? html`<span class="muted">reading…</span>` : null}
    </div>
    <${ErrorNote} error=${page.error} />
    <ol class="entries" aria-label="Changes, newest first">
      ${page.changes.map(
        (c) => html`<${Entry}
          key=${c.seq}
          change=${c}
          canRollback=${admin && DOCUMENT_KINDS.has(c.kind) && c.version !== head.version}
          rollbackHere=${(e) => ask(e.version, e.seq)}
          confirm=${confirmFor(c.seq)}
        />`,
      )}
    </ol>
    ${!page.loading && !page.changes.length && !page.error ? html`<p class="muted">No change matches.</p>` : null}
    <div class="row">
      ${page.hasMore
        ? html`<button type="button" class="secondary" disabled=${page.loading} onClick=${() => read(page.scannedTo, true)}>Older</button>`
        : page.changes.length
          ? html`<span class="muted">End of the retained history.</span>`
          : null}
    </div>
  </section>`;
}
