// A list of changes as the operator reads them: each JSON Patch operation (add, remove, replace,
// move, copy, test) coloured by kind, with its path and value, and "old → new" where the old
// value is known (a client-side diff).
import { html, useState } from "./ui.js";

const SHORT = 160;

/** A JSON value in one line, cut at SHORT characters with a control to show all of it. */
export function JsonValue({ value }) {
  const [whole, setWhole] = useState(false);
  const text = value === undefined ? "" : JSON.stringify(value);
  if (text.length <= SHORT) return html`<code class="json-value">${text}</code>`;
  return html`<code class="json-value">${whole ? text : `${text.slice(0, SHORT)}…`}</code>
    <button type="button" class="link" aria-expanded=${whole} onClick=${() => setWhole(!whole)}>
      ${whole ? "show less" : `show all (${text.length.toLocaleString()} chars)`}
    </button>`;
}

const FIRST = 50;
const WITH_VALUE = new Set(["add", "replace", "test"]);

/**
 * `ops`: [{ op, path, from?, value?, old? }]; `old` in an entry shows "old → new". `empty` is
 * what to say when there are none. Long lists show FIRST entries, then the rest on request.
 */
export function PatchView({ ops, empty = "No change.", label = "Changes" }) {
  const [all, setAll] = useState(false);
  if (!ops?.length) return html`<p class="muted patch-empty">${empty}</p>`;
  const shown = all ? ops : ops.slice(0, FIRST);
  return html`<ul class="patch" aria-label=${label}>
    ${shown.map(
      (op, i) => html`<li key=${i} class=${`patch-op op-${op.op}`}>
        <span class="op-name">${op.op}</span>
        <code class="op-path">${op.path === "" ? "(whole document)" : op.path}</code>
        ${op.from != null ? html`<span class="muted">from</span> <code class="op-path">${op.from}</code>` : null}
        ${"old" in op ? html`<${JsonValue} value=${op.old} />` : null}
        ${"old" in op && "value" in op ? html`<span class="arrow" aria-label="becomes">→</span>` : null}
        ${"value" in op && WITH_VALUE.has(op.op) ? html`<${JsonValue} value=${op.value} />` : null}
      </li>`,
    )}
    ${ops.length > FIRST && !all
      ? html`<li><button type="button" class="link" onClick=${() => setAll(true)}>show ${ops.length - FIRST} more</button></li>`
      : null}
    ${ops.truncated ? html`<li class="muted">(more changes not listed)</li>` : null}
  </ul>`;
}
