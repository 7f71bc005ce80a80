// Placeholder until the view is built.
import { html } from "../lib/ui.js";

export function EditContext() {
  return html`<p>Not built yet.</p>`;
}
