// A swarm's budget: bars per resource kind, the ledger as a tree (budget -> runs -> steps -> ...)
// a page of 50 at a time, and the ledger's refusals as they happen. Live: the allocation changes
// of the feed mark what they touched (the allocation and its parent), which is re-read ten at a
// time, one request in flight: the cost follows what changed and what is on screen, not the
// ledger's size.
import { ResourceBars, allocationRows, amountsText, budgetRows } from "../lib/amounts.js";
import { followContext } from "../lib/follow.js";
import { Countdown, ErrorNote, Time, html, useEffect, useRef, useState } from "../lib/ui.js";

const PAGE = 50;
/** Allocations re-read per request (each an alias; the server bounds aliases per document). */
const REREAD = 10;
/** Refusals listed, newest first. */
const REFUSALS = 20;

const AMOUNT = `{ kind amount }`;
const FIELDS = `id parentId tier status holder purpose createdAt expiresAt endedAt
  granted ${AMOUNT} consumed ${AMOUNT} reserved ${AMOUNT} available ${AMOUNT}
  children(first: 1, status: $status) { totalCount }`;
const CONNECTION = `totalCount edges { node { ${FIELDS} } } pageInfo { hasNextPage endCursor }`;
const BUDGET_FIELDS = `budget { limits ${AMOUNT} granted ${AMOUNT} consumed ${AMOUNT} available ${AMOUNT} }`;
const BUDGET = `query($id: ID!) { context(id: $id) { ${BUDGET_FIELDS} } }`;
const RUNS = `query($id: ID!, $first: Int!, $after: String, $status: AllocationStatus) {
  context(id: $id) { allocations(tier: 2, first: $first, after: $after, status: $status) { ${CONNECTION} } } }`;
const CHILDREN = `query($parent: ID!, $first: Int!, $after: String, $status: AllocationStatus) {
  allocation(id: $parent) { children(first: $first, after: $after, status: $status) { ${CONNECTION} } } }`;
const RELEASE = `mutation($a: ID!, $status: AllocationStatus) { release(allocationId: $a) { ${FIELDS} } }`;
const KINDS = ["ALLOCATED", "USAGE_REPORTED", "RELEASED", "EXPIRED", "RENEWED"];
const REFUSED = `subscription($id: ID!) { ledgerRefusals(contextId: $id) {
  at actor operation code message allocationId parentId requested ${AMOUNT} available ${AMOUNT} dropped } }`;

/** A query re-reading `ids` (one alias each), and the budget when `budget`; variables id, status, a0, a1... */
function rereadQuery(ids, budget) {
  const vars = [...(budget ? ["$id: ID!"] : []), ...(ids.length ? ["$status: AllocationStatus", ...ids.map((_, i) => `$a${i}: ID!`)] : [])];
  const head = budget ? `context(id: $id) { ${BUDGET_FIELDS} }` : "";
  const reads = ids.map((_, i) => `a${i}: allocation(id: $a${i}) { ${FIELDS} }`).join("\n");
  return `query(${vars.join(", ")}) { ${head} ${reads} }`;
}

/**
 * The tree's data, outside preact's state (it changes by the change, not by the render):
 * allocations by id, the loaded pages by list ("" = the runs, else the parent's id), the open
 * nodes, and what waits to be re-read.
 */
function createLedger(api, id, status, changed) {
  const nodes = new Map();
  const lists = new Map();
  const open = new Set();
  const stale = new Set();
  let budget = null;
  let budgetStale = false;
  let reading = false;
  let closed = false;
  const errors = { load: null, live: null };

  const listOf = (key) => {
    let list = lists.get(key);
    if (!list) lists.set(key, (list = { ids: [], endCursor: null, hasNextPage: false, totalCount: 0, loading: false, loaded: false }));
    return list;
  };

  async function loadPage(key) {
    const list = listOf(key);
    if (list.loading) return;
    list.loading = true;
    changed();
    try {
      const vars = { first: PAGE, after: list.endCursor, status };
      const data = key === "" ? await api.query(RUNS, { id, ...vars }) : await api.query(CHILDREN, { parent: key, ...vars });
      const page = key === "" ? data.context?.allocations : data.allocation?.children;
      if (page) {
        for (const { node } of page.edges) {
          nodes.set(node.id, node);
          if (!list.ids.includes(node.id)) list.ids.push(node.id);
        }
        list.endCursor = page.pageInfo.endCursor ?? list.endCursor;
        list.hasNextPage = page.pageInfo.hasNextPage;
        list.totalCount = page.totalCount;
      }
      list.loaded = true;
      errors.load = null;
    } catch (err) {
      errors.load = err;
    } finally {
      list.loading = false;
      if (!closed) changed();
    }
  }

  async function loadBudget() {
    try {
      budget = (await api.query(BUDGET, { id })).context?.budget ?? null;
    } catch (err) {
      errors.load = err;
    }
    if (!closed) changed();
  }

  /** Re-reads what is stale, REREAD allocations (and the budget) a request, one request at a time. */
  async function reread() {
    if (reading) return;
    reading = true;
    try {
      while (!closed && (stale.size > 0 || budgetStale)) {
        const ids = [...stale].slice(0, REREAD);
        for (const a of ids) stale.delete(a);
        const withBudget = budgetStale;
        budgetStale = false;
        // Variables the query does not declare are ignored.
        const variables = { id, status, ...Object.fromEntries(ids.map((a, i) => [`a${i}`, a])) };
        const data = await api.query(rereadQuery(ids, withBudget), variables);
        if (withBudget) budget = data.context?.budget ?? budget;
        ids.forEach((a, i) => {
          const node = data[`a${i}`];
          if (node) nodes.set(a, node);
          else forget(a); // pruned by retention
        });
        changed();
      }
    } catch (err) {
      errors.live = err;
      changed();
    } finally {
      reading = false;
    }
  }

  function forget(a) {
    nodes.delete(a);
    for (const list of lists.values()) list.ids = list.ids.filter((x) => x !== a);
  }

  /** One batch of the feed: marks the allocations it touched, and their parents, for re-reading. */
  function apply(batch) {
    if (batch.resync.length > 0) return reset();
    for (const { kind, allocation } of batch.changes) {
      if (!allocation) continue;
      budgetStale ||= allocation.parentId === null && kind !== "USAGE_REPORTED" && kind !== "RENEWED";
      if (nodes.has(allocation.id)) stale.add(allocation.id);
      if (allocation.parentId && nodes.has(allocation.parentId) && kind !== "USAGE_REPORTED" && kind !== "RENEWED") stale.add(allocation.parentId);
      if (kind === "ALLOCATED") {
        // New allocations come last (oldest first): shown at once where their list is read to its end.
        const list = lists.get(allocation.parentId ?? "");
        if (list?.loaded && !list.ids.includes(allocation.id)) {
          list.totalCount += 1;
          if (!list.hasNextPage) {
            list.ids.push(allocation.id);
            stale.add(allocation.id);
          }
        }
      }
    }
    void reread();
  }

  /** Reads everything shown again: after a resync (changes the feed no longer holds). */
  function reset() {
    const reopen = [...open];
    lists.clear();
    nodes.clear();
    stale.clear();
    open.clear();
    void loadBudget();
    void loadPage("").then(() => {
      for (const a of reopen) if (nodes.has(a)) toggle(a);
    });
  }

  function toggle(a) {
    if (open.has(a)) open.delete(a);
    else {
      open.add(a);
      if (!lists.get(a)?.loaded) void loadPage(a);
    }
    changed();
  }

  /** Releases allocation `a`; its subtree's changes follow through the feed. Rejects with the refusal. */
  async function release(a) {
    const node = (await api.query(RELEASE, { a, status })).release;
    nodes.set(node.id, node);
    if (node.parentId && nodes.has(node.parentId)) stale.add(node.parentId);
    budgetStale ||= node.parentId === null;
    changed();
    void reread();
  }

  return {
    nodes,
    lists,
    open,
    errors,
    get budget() {
      return budget;
    },
    start() {
      void loadBudget();
      void loadPage("");
    },
    loadPage,
    toggle,
    apply,
    release,
    close() {
      closed = true;
    },
  };
}

function Release({ ledger, node }) {
  const [step, setStep] = useState("idle");
  const [error, setError] = useState(null);
  if (node.status !== "ACTIVE") return null;
  const release = async () => {
    setStep("releasing");
    try {
      await ledger.release(node.id);
      setStep("idle");
      setError(null);
    } catch (err) {
      setError(err);
      setStep("confirm");
    }
  };
  if (step === "idle") {
    return html`<button type="button" class="secondary" onClick=${() => setStep("confirm")} aria-label=${`Release ${node.id}`}>Release</button>`;
  }
  return html`<span class="confirm" role="group" aria-label=${`Confirm the release of ${node.id}`}>
    <span>Release ${node.id} and its active descendants?</span>
    <button type="button" class="danger" disabled=${step === "releasing"} onClick=${release}>Confirm release</button>
    <button type="button" class="secondary" disabled=${step === "releasing"} onClick=${() => setStep("idle")}>Cancel</button>
    <${ErrorNote} error=${error} />
  </span>`;
}

function Node({ ledger, admin, a }) {
  const node = ledger.nodes.get(a);
  if (!node) return null;
  const open = ledger.open.has(a);
  const kids = node.children.totalCount;
  return html`<li class=${`alloc ${node.status.toLowerCase()}`} data-allocation=${node.id}>
    <div class="alloc-head">
      <button type="button" class="toggle" aria-expanded=${open} aria-controls=${`kids-${node.id}`} disabled=${kids === 0 && !open}
        onClick=${() => ledger.toggle(a)} aria-label=${`${open ? "Hide" : "Show"} the children of ${node.id}`}>${open ? "▾" : "▸"} ${kids}</button>
      <code class="alloc-id">${node.id}</code>
      <span class="status" data-testid="status">${node.status}</span>
      <span>${node.holder ?? html`<span class="muted">no holder</span>`}</span>
      ${node.purpose ? html`<span class="muted">${node.purpose}</span>` : null}
      <span class="lease">
        ${node.status !== "ACTIVE" ? html`ended <${Time} at=${node.endedAt} />` : node.expiresAt ? html`lease <${Countdown} until=${node.expiresAt} />` : "no lease"}
      </span>
      ${admin ? html`<${Release} ledger=${ledger} node=${node} />` : null}
    </div>
    <${ResourceBars} rows=${allocationRows(node)} label=${`Resources of ${node.id}`} />
    ${open ? html`<${List} ledger=${ledger} admin=${admin} listKey=${a} />` : null}
  </li>`;
}

function List({ ledger, admin, listKey }) {
  const list = ledger.lists.get(listKey);
  const id = listKey === "" ? "runs" : `kids-${listKey}`;
  if (!list || (!list.loaded && list.loading)) return html`<p class="muted" id=${id}>Loading…</p>`;
  const shown = list.ids.filter((a) => ledger.nodes.has(a)).length;
  return html`<div id=${id}>
    ${list.ids.length === 0 ? html`<p class="muted">${listKey === "" ? "No allocations." : "No children."}</p>` : null}
    <ul class="ledger-tree">
      ${list.ids.map((a) => html`<${Node} key=${a} ledger=${ledger} admin=${admin} a=${a} />`)}
    </ul>
    ${list.hasNextPage
      ? html`<button type="button" class="secondary more" disabled=${list.loading} onClick=${() => ledger.loadPage(listKey)}>
          More (${shown} of ${list.totalCount})
        </button>`
      : null}
  </div>`;
}

function Refusals({ refusals, error }) {
  return html`<section aria-labelledby="refusals-title">
    <h2 id="refusals-title">Refusals</h2>
    <p class="muted">Live since this page opened (the last ${REFUSALS}): refusals change nothing, so none are kept.</p>
    <${ErrorNote} error=${error} />
    ${refusals.length === 0
      ? html`<p class="muted" data-testid="no-refusals">None yet.</p>`
      : html`<div class="table-wrap"><table aria-label="Refusals">
          <thead><tr><th scope="col">At</th><th scope="col">Actor</th><th scope="col">Operation</th><th scope="col">Code</th><th scope="col">Requested</th><th scope="col">Available</th><th scope="col">Allocation</th></tr></thead>
          <tbody>
            ${refusals.map(
              (r) => html`<tr key=${r.key} title=${r.message}>
                <td><${Time} at=${r.at} />${r.dropped ? html` <span class="notice-inline">(${r.dropped} earlier not shown)</span>` : null}</td>
                <td>${r.actor}</td><td>${r.operation}</td><td><strong>${r.code}</strong></td>
                <td>${amountsText(r.requested)}</td><td>${amountsText(r.available)}</td>
                <td>${r.allocationId ?? (r.parentId ? `under ${r.parentId}` : "budget")}</td>
              </tr>`,
            )}
          </tbody>
        </table></div>`}
  </section>`;
}

export function Budget({ api, me, id, head }) {
  const [status, setStatus] = useState("");
  const [, setTick] = useState(0);
  const [refusals, setRefusals] = useState([]);
  const [refusalError, setRefusalError] = useState(null);
  const ledger = useRef(null);
  const admin = me.role === "ADMIN";

  useEffect(() => {
    const l = createLedger(api, id, status || null, () => setTick((t) => t + 1));
    ledger.current = l;
    l.start();
    const follow = { id, seq: head.seq, kinds: KINDS, fields: "kind allocation { id parentId }", maxWaitMs: 200, perSecond: 4 };
    const stop = followContext(api, follow, {
      next: (batch) => l.apply(batch),
      error: (err) => {
        l.errors.live = err;
        setTick((t) => t + 1);
      },
    });
    return () => {
      stop();
      l.close();
    };
  }, [api, id, status]);

  useEffect(() => {
    let n = 0;
    return api.subscribe(REFUSED, { id }, {
      next: ({ ledgerRefusals: r }) => setRefusals((list) => [{ ...r, key: `${r.at}-${n++}` }, ...list].slice(0, REFUSALS)),
      error: setRefusalError,
    });
  }, [api, id]);

  const l = ledger.current;
  const budget = l?.budget;
  return html`<section aria-labelledby="budget-title" class="budget">
    <h2 id="budget-title">Budget</h2>
    <${ErrorNote} error=${l?.errors.load} />
    ${budget
      ? html`<${ResourceBars} rows=${budgetRows(budget)} label="Budget" />
          <p class="legend muted"><span class="key consumed"></span> consumed <span class="key reserved"></span> granted / reserved <span class="key available"></span> available</p>`
      : html`<p class="muted">Loading…</p>`}
    <div class="row">
      <h2 id="ledger-title">Allocations</h2>
      <label for="ledger-status">Status</label>
      <select id="ledger-status" value=${status} onChange=${(e) => setStatus(e.target.value)}>
        <option value="">all</option>
        <option value="ACTIVE">active</option>
      </select>
    </div>
    <${ErrorNote} error=${l?.errors.live} />
    ${l ? html`<${List} ledger=${l} admin=${admin} listKey="" />` : null}
    <${Refusals} refusals=${refusals} error=${refusalError} />
  </section>`;
}
