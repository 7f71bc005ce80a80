// Resource amounts ([{ kind, amount }] lists, as the API gives them) and the bars that show them.
import { html } from "./ui.js";

/** The amount of `kind` in a list (0 when absent). */
export function amountOf(list, kind) {
  return list?.find((a) => a.kind === kind)?.amount ?? 0;
}

/** The kinds of the lists, in first-seen order. */
export function kindsOf(...lists) {
  const kinds = [];
  for (const list of lists) for (const { kind } of list ?? []) if (!kinds.includes(kind)) kinds.push(kind);
  return kinds;
}

/** A list as text: "credits 11, tokens 500"; "—" when empty or null. */
export function amountsText(list) {
  return list?.length ? list.map((a) => `${a.kind} ${a.amount.toLocaleString()}`).join(", ") : "—";
}

const percent = (value, total) => `${total > 0 ? Math.max(0, Math.min(100, (value / total) * 100)) : 0}%`;

/**
 * One bar per resource kind: `rows` are { kind, total, parts: [{ name, value, cls }] }, the parts
 * laid end to end against `total` (the figures say the same in words, for screen readers too).
 */
export function ResourceBars({ rows, label }) {
  if (!rows.length) return html`<p class="muted">No resource kinds.</p>`;
  return html`<ul class="bars" aria-label=${label}>
    ${rows.map(({ kind, total, parts }) => {
      const words = `${parts.map((p) => `${p.value.toLocaleString()} ${p.name}`).join(", ")} of ${total.toLocaleString()}`;
      return html`<li class="bar-row" key=${kind} data-kind=${kind}>
        <span class="bar-kind">${kind}</span>
        <span class="bar" role="img" aria-label=${`${kind}: ${words}`}>
          ${parts.map((p) => html`<span class=${`bar-part ${p.cls}`} style=${{ width: percent(p.value, total) }} title=${`${p.name}: ${p.value.toLocaleString()}`}></span>`)}
        </span>
        <span class="bar-figures">${words}</span>
      </li>`;
    })}
  </ul>`;
}

/** The bars of a budget: per kind of its limits, consumed, granted (held by runs) and available, against the limit. */
export function budgetRows(budget) {
  return kindsOf(budget.limits, budget.granted, budget.consumed).map((kind) => {
    const consumed = amountOf(budget.consumed, kind);
    const granted = amountOf(budget.granted, kind);
    const available = amountOf(budget.available, kind);
    // Limits may be lowered below what is held: the bar then spans what is held.
    const total = Math.max(amountOf(budget.limits, kind), consumed + granted + available);
    return {
      kind,
      total,
      parts: [
        { name: "consumed", value: consumed, cls: "consumed" },
        { name: "granted", value: granted, cls: "reserved" },
        { name: "available", value: available, cls: "available" },
      ],
    };
  });
}

/** The bars of an allocation: per kind it was granted, consumed, reserved by its children and available, against the grant. */
export function allocationRows(allocation) {
  return kindsOf(allocation.granted).map((kind) => ({
    kind,
    total: amountOf(allocation.granted, kind),
    parts: [
      { name: "consumed", value: amountOf(allocation.consumed, kind), cls: "consumed" },
      { name: "reserved", value: amountOf(allocation.reserved, kind), cls: "reserved" },
      { name: "available", value: amountOf(allocation.available, kind), cls: "available" },
    ],
  }));
}
