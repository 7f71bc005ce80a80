// Health: /ready, the health query, the server instances and key figures from /metrics (admins).
import { ErrorNote, Time, html, useEffect, useState } from "../lib/ui.js";

const HEALTH = `{ health { ok redisReachable redisLatencyMs state } }`;
const INSTANCES = `{ serverInstances { id version startedAt heartbeat subscriptions } }`;
const REFRESH_MS = 5000;

/** The samples of a Prometheus text exposition: [{ name, labels, value }]. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const [, k, v] of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** The figures an operator looks at first, from the samples. */
function keyFigures(samples) {
  const sum = (name, where = () => true) => samples.filter((s) => s.name === name && where(s.labels)).reduce((n, s) => n + s.value, 0);
  const mean = (base) => {
    const count = sum(`${base}_count`);
    return count ? (sum(`${base}_sum`) / count) * 1000 : null;
  };
  return [
    ["Requests served", sum("swarm_requests_total")],
    ["Errors returned", sum("swarm_errors_total")],
    ["Ledger refusals", sum("swarm_ledger_refusals_total")],
    ["Active subscriptions", sum("swarm_active_subscriptions")],
    ["Mean request time (ms)", mean("swarm_request_duration_seconds")],
    ["Mean feed lag (ms)", mean("swarm_feed_lag_seconds")],
    ["Mean Redis round trip (ms)", mean("swarm_redis_latency_seconds")],
    ["Faults", sum("swarm_faults_total")],
    ["Resident memory (MiB)", sum("process_resident_memory_bytes") / 1048576],
  ];
}

const shown = (value) => (value === null ? "—" : Number.isInteger(value) ? value.toLocaleString() : value.toFixed(2));

export function HealthPage({ api, me }) {
  const admin = me.role === "ADMIN";
  const [state, setState] = useState({ ready: null, health: null, instances: null, figures: null, error: null, at: null });
  useEffect(() => {
    let stopped = false;
    const load = async () => {
      const next = { error: null, at: new Date().toISOString() };
      await Promise.all([
        api.ready().then((r) => (next.ready = r), (err) => (next.error = err)),
        api.query(HEALTH).then((d) => (next.health = d.health), (err) => (next.error = err)),
        admin ? api.query(INSTANCES).then((d) => (next.instances = d.serverInstances), (err) => (next.error = err)) : null,
        admin ? api.metrics().then((t) => (next.figures = keyFigures(parseMetrics(t))), (err) => (next.error = err)) : null,
      ]);
      if (!stopped) setState((s) => ({ ...s, ...next }));
    };
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [api, admin]);
  const { ready, health, instances, figures, error, at } = state;
  return html`<section aria-labelledby="health-title">
    <h1 id="health-title">Health</h1>
    <p class="muted">Refreshed every ${REFRESH_MS / 1000} s; last <${Time} at=${at} />.</p>
    <${ErrorNote} error=${error} />
    <dl class="facts">
      <dt>Ready</dt>
      <dd class=${ready?.ready ? "good" : "bad"} data-testid="ready">${ready ? (ready.ready ? "yes" : "no") : "…"}</dd>
      <dt>Redis state</dt>
      <dd data-testid="redis-state">${health?.state ?? "…"}</dd>
      <dt>Redis reachable</dt>
      <dd>${health ? (health.redisReachable ? "yes" : "no") : "…"}</dd>
      <dt>Redis round trip</dt>
      <dd>${health?.redisLatencyMs != null ? `${health.redisLatencyMs.toFixed(2)} ms` : "—"}</dd>
    </dl>
    ${admin
      ? html`<h2>Server instances</h2>
          <table aria-label="Server instances">
            <thead><tr><th scope="col">Instance</th><th scope="col">Version</th><th scope="col">Started</th><th scope="col">Heartbeat</th><th scope="col">Subscriptions</th></tr></thead>
            <tbody>
              ${(instances ?? []).map(
                (i) => html`<tr key=${i.id}><td><code>${i.id}</code></td><td>${i.version}</td><td><${Time} at=${i.startedAt} /></td><td><${Time} at=${i.heartbeat} /></td><td>${i.subscriptions}</td></tr>`,
              )}
            </tbody>
          </table>
          <h2>Key figures (this instance's /metrics)</h2>
          <dl class="facts">
            ${(figures ?? []).map(([label, value]) => html`<dt>${label}</dt><dd>${shown(value)}</dd>`)}
          </dl>`
      : html`<p class="muted">Server instances and metrics are shown to admin keys.</p>`}
  </section>`;
}
