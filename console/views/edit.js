// Edit (writers): a JSON Patch or a merge patch, previewed with a dry run (the changes it would
// make, or the problems by path), then written with compare-and-set on the version the editor was
// opened on. A conflict shows what changed meanwhile and who changed it, and offers to apply the
// same edit again on the new version.
import { ErrorNote, Time, html, useEffect, useState } from "../lib/ui.js";
import { diffJson } from "../lib/json-diff.js";
import { PatchView } from "../lib/patch-view.js";

const READ = `query($id: ID!) { context(id: $id) { version seq document } }`;
const RESULT = `{ version seq document }`;
const WRITES = {
  patch: `mutation($id: ID!, $edit: [JSONPatchOperation!]!, $version: Int!, $reason: String, $dryRun: Boolean) {
    write: patchContext(id: $id, patch: $edit, expectedVersion: $version, reason: $reason, dryRun: $dryRun) ${RESULT}
  }`,
  merge: `mutation($id: ID!, $edit: JSON!, $version: Int!, $reason: String, $dryRun: Boolean) {
    write: mergeContext(id: $id, merge: $edit, expectedVersion: $version, reason: $reason, dryRun: $dryRun) ${RESULT}
  }`,
};
const MEANWHILE_DIFF = `query($id: ID!, $from: Int!, $to: Int!) { context(id: $id) { diff(fromVersion: $from, toVersion: $to) { op path from value } } }`;
const MEANWHILE_ENTRIES = `query($id: ID!) {
  context(id: $id) { historyPage(last: 50, kinds: [UPDATED, ROLLED_BACK]) { changes { seq version kind actor at reason } } }
}`;

const MODES = [
  ["patch", "JSON Patch", "A JSON array of RFC 6902 operations"],
  ["merge", "Merge patch", "A JSON object (RFC 7386 merge patch; null deletes a member)"],
];
const EXAMPLES = {
  patch: `[\n  { "op": "replace", "path": "/configuration/model", "value": "large" }\n]`,
  merge: `{\n  "configuration": { "model": "large" }\n}`,
};

/** The editor's text as the write's argument, or an error the ErrorNote shows. */
function parseEdit(mode, text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: { code: "INVALID_JSON", message: `the text is not JSON: ${err.message}` } };
  }
  if (mode === "patch" && !Array.isArray(value)) return { error: { code: "INVALID_JSON", message: "a JSON Patch is an array of operations" } };
  if (mode === "merge" && (value === null || typeof value !== "object" || Array.isArray(value)))
    return { error: { code: "INVALID_JSON", message: "a merge patch here is a JSON object" } };
  return { value };
}

/** What changed between `from` and `to` (the conflict): the diff and the entries that made it. */
async function meanwhile(api, id, from, to) {
  const [diff, entries] = await Promise.allSettled([
    api.query(MEANWHILE_DIFF, { id, from, to }),
    api.query(MEANWHILE_ENTRIES, { id }),
  ]);
  return {
    ops: diff.status === "fulfilled" ? (diff.value.context?.diff ?? []) : null,
    diffError: diff.status === "rejected" ? diff.reason : null,
    entries: entries.status === "fulfilled" ? (entries.value.context?.historyPage.changes ?? []).filter((c) => c.version > from && c.version <= to) : [],
  };
}

function Conflict({ conflict, busy, onReapply, onPreview }) {
  const { expected, current, ops, diffError, entries } = conflict;
  return html`<div class="notice conflict" role="alert" aria-labelledby="conflict-title">
    <h3 id="conflict-title">Changed meanwhile: version ${expected} → ${current}</h3>
    <p>The edit was made on version ${expected}; the swarm is now at version ${current}. Nothing was written.</p>
    ${entries.length
      ? html`<table aria-label="Changes made meanwhile">
          <thead><tr><th scope="col" class="num">Version</th><th scope="col">Kind</th><th scope="col">By</th><th scope="col">At</th><th scope="col">Reason</th></tr></thead>
          <tbody>
            ${entries.map(
              (c) => html`<tr key=${c.seq}><td class="num">${c.version}</td><td>${c.kind}</td><td>${c.actor}</td><td><${Time} at=${c.at} /></td><td>${c.reason ?? ""}</td></tr>`,
            )}
          </tbody>
        </table>`
      : null}
    <${ErrorNote} error=${diffError} />
    ${ops ? html`<${PatchView} ops=${ops} label="What changed meanwhile" empty="The documents are equal." />` : null}
    <div class="row">
      <button type="button" disabled=${busy} onClick=${onReapply}>Re-apply on version ${current}</button>
      <button type="button" class="secondary" disabled=${busy} onClick=${onPreview}>Preview on version ${current}</button>
    </div>
  </div>`;
}

/** The Edit tab (writers): edits the version read when it opened, until told to move on. */
export function EditContext({ api, me, id, head }) {
  const [base, setBase] = useState(null);
  const [mode, setMode] = useState("patch");
  const [text, setText] = useState("");
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  // What the last preview or write gave: { kind: "preview" | "written", version, changes } or a conflict.
  const [outcome, setOutcome] = useState(null);

  /** Reads the document the edit applies to (the version it expects). */
  const open = async () => {
    const { context } = await api.query(READ, { id });
    if (!context) throw { code: "NOT_FOUND", message: `there is no swarm ${id}` };
    setBase(context);
    return context;
  };
  useEffect(() => {
    open().catch(setError);
  }, [api, id]);

  if (me.role === "VIEWER") return html`<p class="muted">Viewer keys cannot edit.</p>`;

  const write = async (dryRun, on = base) => {
    const edit = parseEdit(mode, text);
    if (edit.error) return setError(edit.error);
    setBusy(true);
    setError(null);
    try {
      const { write: result } = await api.query(WRITES[mode], { id, edit: edit.value, version: on.version, reason: reason.trim() || null, dryRun });
      const changes = diffJson(on.document, result.document);
      setOutcome({ kind: dryRun ? "preview" : "written", version: result.version, on: on.version, changes });
      if (!dryRun) {
        setBase({ version: result.version, seq: result.seq, document: result.document });
        setText("");
      }
    } catch (err) {
      if (err.code === "VERSION_CONFLICT" && err.extensions.currentVersion != null) {
        const current = err.extensions.currentVersion;
        setOutcome({ kind: "conflict", expected: on.version, current, ...(await meanwhile(api, id, on.version, current)) });
      } else {
        setOutcome(null);
        setError(err);
      }
    } finally {
      setBusy(false);
    }
  };
  /** Moves the editor to the version now current, then previews or writes the same edit there. */
  const onNewVersion = (dryRun) => async () => {
    setBusy(true);
    try {
      await write(dryRun, await open());
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  const stale = base && head.version !== base.version;
  return html`<section aria-labelledby="edit-title" class="edit">
    <h2 id="edit-title">Edit the document</h2>
    ${base ? html`<p>Editing version <strong data-testid="edit-base">${base.version}</strong>: writes are refused if the swarm has changed since.</p>` : null}
    ${stale
      ? html`<div class="notice row" data-testid="stale">
          The swarm is at version ${head.version} now.
          <button type="button" class="secondary" disabled=${busy} onClick=${() => open().then(() => setOutcome(null), setError)}>Edit version ${head.version} instead</button>
        </div>`
      : null}
    <form onSubmit=${(e) => e.preventDefault()}>
      <fieldset class="row mode">
        <legend>Mode</legend>
        ${MODES.map(
          ([value, label, hint]) => html`<label key=${value} title=${hint}>
            <input type="radio" name="edit-mode" value=${value} checked=${mode === value} onChange=${() => setMode(value)} /> ${label}
          </label>`,
        )}
      </fieldset>
      <label for="edit-text">${MODES.find(([m]) => m === mode)[2]}</label>
      <textarea id="edit-text" class="code" spellcheck="false" placeholder=${EXAMPLES[mode]} value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
      <div class="row">
        <label for="edit-reason">Reason (optional)</label>
        <input id="edit-reason" class="grow" type="text" value=${reason} onInput=${(e) => setReason(e.target.value)} />
      </div>
      <div class="row">
        <button type="button" class="secondary" disabled=${busy || !base || !text.trim()} onClick=${() => write(true)}>Preview (dry run)</button>
        <button type="button" disabled=${busy || !base || !text.trim()} onClick=${() => write(false)}>Apply</button>
        ${busy ? html`<span class="muted">working…</span>` : null}
      </div>
    </form>
    <${ErrorNote} error=${error} />
    ${outcome?.kind === "conflict"
      ? html`<${Conflict} conflict=${outcome} busy=${busy} onReapply=${onNewVersion(false)} onPreview=${onNewVersion(true)} />`
      : outcome
        ? html`<div class=${outcome.kind === "written" ? "outcome written" : "outcome"} role="status" aria-labelledby="outcome-title">
            <h3 id="outcome-title">
              ${outcome.kind === "preview"
                ? outcome.version === outcome.on
                  ? "Preview: the edit would change nothing"
                  : `Preview: would write version ${outcome.version}`
                : outcome.version === outcome.on
                  ? "Written: nothing changed"
                  : `Written: version ${outcome.version}`}
            </h3>
            <${PatchView} ops=${outcome.changes} label=${outcome.kind === "preview" ? "Changes the edit would make" : "Changes written"} />
          </div>`
        : null}
  </section>`;
}
