// The document: a collapsible JSON tree (read again whenever the version changes), and a slice
// field that reads just the parts at one or more JSON Pointers.
import { ErrorNote, html, useEffect, useMemo, useQuery, useState } from "../lib/ui.js";
import { JsonTree } from "../lib/json-tree.js";
import { parsePointers } from "../lib/json-diff.js";

const DOCUMENT = `query($id: ID!) { context(id: $id) { version document } }`;
const SLICE = `query($id: ID!, $paths: [String!]!) { context(id: $id) { version slice(paths: $paths) } }`;

function approximateSize(value) {
  const bytes = JSON.stringify(value).length;
  return bytes >= 1024 * 1024 ? `${(bytes / 1048576).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} bytes`;
}

function Slice({ api, id, version }) {
  const [text, setText] = useState("");
  const [paths, setPaths] = useState(null);
  const [state, setState] = useState({ data: null, error: null });
  // Read again on every version, as the tree is.
  useEffect(() => {
    if (!paths) return;
    let current = true;
    api.query(SLICE, { id, paths }).then(
      (data) => current && setState({ data: data.context, error: null }),
      (error) => current && setState({ data: null, error }),
    );
    return () => (current = false);
  }, [api, id, paths, version]);
  const submit = (event) => {
    event.preventDefault();
    const asked = parsePointers(text);
    setPaths(asked.length ? asked : null);
    if (!asked.length) setState({ data: null, error: null });
  };
  const slice = state.data?.slice;
  return html`<section class="slice" aria-labelledby="slice-title">
    <h2 id="slice-title">Slice</h2>
    <form class="row" onSubmit=${submit}>
      <label for="slice-paths">JSON Pointers (comma or newline separated)</label>
      <textarea id="slice-paths" class="code slice-input" rows="2" placeholder="/resources/limits, /policy" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
      <button type="submit">Read slice</button>
    </form>
    <${ErrorNote} error=${state.error} />
    ${slice
      ? html`<div class="slice-results" role="region" aria-label="Slice results">
          ${(paths ?? []).map(
            (path) => html`<div class="slice-result" key=${path}>
              ${slice[path] === null || slice[path] === undefined
                ? html`<p><code>${path}</code>: <span class="jt-val jt-null">null</span> <span class="muted">(null, or the path does not resolve)</span></p>`
                : html`<${JsonTree} value=${slice[path]} pointer=${path} name=${path} openDepth=${2} label=${`Slice ${path}`} />`}
            </div>`,
          )}
        </div>`
      : null}
  </section>`;
}

/** The Document tab: the tree of the current version (read once per version) and the slice field. */
export function ContextDocument({ api, id, head }) {
  const doc = useQuery(api, DOCUMENT, { id }, [api, id, head.version]);
  const [openDepth, setOpenDepth] = useState(1);
  const context = doc.data?.context;
  const size = useMemo(() => (context ? approximateSize(context.document) : ""), [context]);
  return html`<section aria-labelledby="document-title">
    <h2 id="document-title" class="visually-hidden">Document</h2>
    <${ErrorNote} error=${doc.error} />
    ${doc.data && !context ? html`<p class="error" role="alert">The swarm is gone.</p>` : null}
    ${context
      ? html`<div class="row doc-bar">
            <span>Version <strong data-testid="document-version">${context.version}</strong>, ${size}</span>
            <label for="open-depth">Open levels</label>
            <select id="open-depth" value=${openDepth} onChange=${(e) => setOpenDepth(Number(e.target.value))}>
              ${[1, 2, 3].map((n) => html`<option value=${n}>${n}</option>`)}
            </select>
            ${doc.loading ? html`<span class="muted">reading version ${head.version}…</span>` : null}
          </div>
          <${JsonTree} key=${openDepth} value=${context.document} openDepth=${openDepth} label="Document" />`
      : doc.loading
        ? html`<p class="loading">Reading the document…</p>`
        : null}
    <${Slice} api=${api} id=${id} version=${context?.version} />
  </section>`;
}
