// What every view shares: the view library, error display, times and countdowns, copying,
// and a hook that runs a query.
import { html, useCallback, useEffect, useRef, useState } from "../vendor/htm-preact.js";

export { html, render, useCallback, useEffect, useMemo, useRef, useState } from "../vendor/htm-preact.js";

/** A refusal as the operator reads it: code, message, and VALIDATION_FAILED's problems by path. */
export function ErrorNote({ error }) {
  if (!error) return null;
  const problems = error.extensions?.problems ?? [];
  return html`<div class="error" role="alert">
    <strong>${error.code ?? "ERROR"}</strong> ${error.message}
    ${problems.length > 1 || (problems.length === 1 && problems[0].message !== error.message)
      ? html`<ul class="problems">
          ${problems.map((p) => html`<li><code>${p.path || "(document)"}</code> ${p.message}</li>`)}
        </ul>`
      : null}
  </div>`;
}

/** The current time, updated every `ms`: for countdowns. */
export function useNow(ms = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}

/** An instant, shown in the operator's time zone, with the ISO string as its title. */
export function Time({ at }) {
  if (!at) return html`<span class="muted">—</span>`;
  const date = new Date(at);
  return html`<time datetime=${at} title=${at}>${date.toLocaleString()}</time>`;
}

/** How long until `until` (an ISO instant), counting down; "expired" once past. */
export function Countdown({ until }) {
  const now = useNow(1000);
  if (!until) return html`<span class="muted">no lease</span>`;
  const left = Math.round((new Date(until).getTime() - now) / 1000);
  if (left <= 0) return html`<span class="countdown expired" title=${until}>expired</span>`;
  const text = left >= 3600 ? `${Math.floor(left / 3600)}h ${Math.floor((left % 3600) / 60)}m` : left >= 60 ? `${Math.floor(left / 60)}m ${left % 60}s` : `${left}s`;
  return html`<span class="countdown" title=${until}>${text}</span>`;
}

/** Copies text to the clipboard; resolves to whether it worked. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    const done = document.execCommand("copy");
    area.remove();
    return done;
  }
}

/**
 * Runs `query` with `variables` now and whenever `deps` change; `reload()` runs it again.
 * Gives { data, error, loading, reload }; a newer run's answer replaces an older one's.
 */
export function useQuery(api, query, variables, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const run = useRef(0);
  const reload = useCallback(() => {
    const mine = ++run.current;
    setState((s) => ({ ...s, loading: true }));
    api.query(query, variables).then(
      (data) => mine === run.current && setState({ data, error: null, loading: false }),
      (error) => mine === run.current && setState((s) => ({ data: s.data, error, loading: false })),
    );
  }, deps);
  useEffect(reload, [reload]);
  return { ...state, reload };
}

/** A path of the console's router, as a link. */
export function href(...parts) {
  return `#/${parts.map((p) => encodeURIComponent(p)).join("/")}`;
}
