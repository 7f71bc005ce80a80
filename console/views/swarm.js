// One swarm: its head (version, updated at/by, counts) and a tab per task. The head follows the
// swarm's change feed, so it is current while the page is open.
import { ErrorNote, Time, href, html, useEffect, useQuery } from "../lib/ui.js";
import { ContextDocument } from "./document.js";
import { EditContext } from "./edit.js";
import { History } from "./history.js";
import { Budget } from "./budget.js";
import { Locks } from "./locks.js";

const HEAD = `query($id: ID!) { context(id: $id) { id version seq updatedAt updatedBy activeAllocations heldLocks } }`;
const CHANGES = `subscription($id: ID!) { contextChanges(contextIds: [$id], batch: { maxWaitMs: 100 }, maxBatchesPerSecond: 5) { changes { seq } resync { seq } } }`;

const TABS = [
  ["document", "Document", ContextDocument],
  ["edit", "Edit", EditContext],
  ["history", "History", History],
  ["budget", "Budget", Budget],
  ["locks", "Locks", Locks],
];

export function SwarmPage({ api, me, route }) {
  const id = route.id;
  const head = useQuery(api, HEAD, { id }, [api, id]);
  useEffect(() => {
    const unsubscribe = api.subscribe(CHANGES, { id }, { next: () => head.reload(), error: () => {} });
    // Changes made while the WebSocket was down never arrive: read the head again.
    const stopReconnect = api.onReconnect(() => head.reload());
    return () => {
      unsubscribe();
      stopReconnect();
    };
  }, [api, id]);
  const canWrite = me.role !== "VIEWER";
  const tabs = TABS.filter(([name]) => name !== "edit" || canWrite);
  const tab = tabs.find(([name]) => name === route.params.get("tab")) ?? tabs[0];
  const context = head.data?.context;
  const [, , View] = tab;
  return html`<section aria-labelledby="swarm-title">
    <p><a href="#/swarms">← Swarms</a></p>
    <h1 id="swarm-title"><code>${id}</code></h1>
    <${ErrorNote} error=${head.error} />
    ${head.data && !context ? html`<p class="error" role="alert">There is no swarm ${id}.</p>` : null}
    ${context
      ? html`<dl class="facts inline" aria-label="Swarm head">
          <dt>Version</dt><dd data-testid="version">${context.version}</dd>
          <dt>Seq</dt><dd>${context.seq}</dd>
          <dt>Updated</dt><dd><${Time} at=${context.updatedAt} /> by ${context.updatedBy}</dd>
          <dt>Active allocations</dt><dd>${context.activeAllocations}</dd>
          <dt>Held locks</dt><dd>${context.heldLocks}</dd>
        </dl>`
      : null}
    <nav class="tabs" aria-label="Swarm views">
      ${tabs.map(([name, label]) => html`<a href=${`${href("swarms", id)}?tab=${name}`} aria-current=${name === tab[0] ? "page" : undefined}>${label}</a>`)}
    </nav>
    ${context ? html`<${View} api=${api} me=${me} id=${id} route=${route} head=${context} />` : null}
  </section>`;
}
