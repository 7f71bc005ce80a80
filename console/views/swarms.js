// Placeholder until the view is built.
import { html } from "../lib/ui.js";

export function SwarmList() {
  return html`<p>Not built yet.</p>`;
}
