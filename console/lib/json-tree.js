// A collapsible JSON tree that stays fast on large documents: a node renders its children only
// once expanded, and at most PAGE of them at a time ("show more"). Every node shows its JSON
// Pointer on hover or focus and can copy it; containers are buttons (Enter or Space toggles).
import { copyText, html, useMemo, useState } from "./ui.js";
import { childPointer } from "./json-diff.js";

const PAGE = 200;
const LONG_STRING = 2000;

const isContainer = (v) => v !== null && typeof v === "object";

function summary(value) {
  if (Array.isArray(value)) return `[${value.length.toLocaleString()} ${value.length === 1 ? "item" : "items"}]`;
  const n = Object.keys(value).length;
  return `{${n.toLocaleString()} ${n === 1 ? "key" : "keys"}}`;
}

function Leaf({ value }) {
  const [whole, setWhole] = useState(false);
  if (typeof value === "string") {
    const long = value.length > LONG_STRING;
    return html`<span class="jt-val jt-string">"${long && !whole ? `${value.slice(0, LONG_STRING)}…` : value}"</span>
      ${long
        ? html`<button type="button" class="link" onClick=${() => setWhole(!whole)}>${whole ? "show less" : `show all (${value.length.toLocaleString()} chars)`}</button>`
        : null}`;
  }
  return html`<span class=${`jt-val jt-${value === null ? "null" : typeof value}`}>${String(value)}</span>`;
}

function CopyPointer({ pointer }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    setCopied(await copyText(pointer));
    setTimeout(() => setCopied(false), 1500);
  };
  return html`<button type="button" class="jt-copy secondary" aria-label=${`Copy pointer ${pointer || "(whole document)"}`} onClick=${copy}>
    ${copied ? "copied" : "copy pointer"}
  </button>`;
}

function Node({ name, value, pointer, depth, openDepth }) {
  const container = isContainer(value);
  const [open, setOpen] = useState(container && depth < openDepth);
  const [limit, setLimit] = useState(PAGE);
  const keys = useMemo(() => (container && open ? (Array.isArray(value) ? null : Object.keys(value)) : null), [value, open]);
  const count = container ? (Array.isArray(value) ? value.length : (keys ?? Object.keys(value)).length) : 0;
  const label = name === null ? "(document)" : name;
  const where = pointer === "" ? "(whole document)" : pointer;
  return html`<li class="jt-node">
    <div class="jt-row" title=${where}>
      ${container
        ? html`<button type="button" class="jt-toggle" aria-expanded=${open} onClick=${() => setOpen(!open)}>
            <span class="jt-caret" aria-hidden="true">${open ? "▾" : "▸"}</span>
            <span class="jt-key">${label}</span> <span class="jt-summary">${summary(value)}</span>
          </button>`
        : html`<span class="jt-leaf"><span class="jt-key">${label}</span>:</span> <${Leaf} value=${value} />`}
      <code class="jt-pointer">${where}</code>
      <${CopyPointer} pointer=${pointer} />
    </div>
    ${container && open
      ? html`<ul class="jt-children">
          ${Array.from({ length: Math.min(limit, count) }, (_, i) => {
            const key = keys ? keys[i] : i;
            const at = childPointer(pointer, key);
            return html`<${Node} key=${at} name=${String(key)} value=${value[key]} pointer=${at} depth=${depth + 1} openDepth=${openDepth} />`;
          })}
          ${count > limit
            ? html`<li class="jt-more">
                <button type="button" class="secondary" onClick=${() => setLimit(limit + PAGE)}>
                  Show ${Math.min(PAGE, count - limit).toLocaleString()} more (${(count - limit).toLocaleString()} not shown)
                </button>
              </li>`
            : null}
        </ul>`
      : null}
  </li>`;
}

/**
 * `value` as a tree whose root is at `pointer` (default "": the whole document), containers open
 * down to `openDepth` levels (default 1: the root's children listed, their own children not).
 * `name` labels the root; `label` names the tree for assistive technology.
 */
export function JsonTree({ value, pointer = "", openDepth = 1, name = null, label = "JSON tree" }) {
  return html`<ul class="json-tree" aria-label=${label}>
    <${Node} name=${name} value=${value} pointer=${pointer} depth=${0} openDepth=${openDepth} />
  </ul>`;
}
