// Placeholder until the view is built.
import { html } from "../lib/ui.js";

export function History() {
  return html`<p>Not built yet.</p>`;
}
