// Placeholder until the view is built.
import { html } from "../lib/ui.js";

export function LiveFeed() {
  return html`<p>Not built yet.</p>`;
}
