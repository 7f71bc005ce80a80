// The console's shell: sign-in (the key lives in this tab's sessionStorage only), the navigation
// and the hash router. Each page is a view in views/; views get { api, me, route }.
import { createApi } from "./lib/api.js";
import { ErrorNote, html, render, useEffect, useState } from "./lib/ui.js";
import { SwarmList } from "./views/swarms.js";
import { SwarmPage } from "./views/swarm.js";
import { LiveFeed } from "./views/feed.js";
import { HealthPage } from "./views/health.js";

const KEY_STORAGE = "swarm-context-key";
const ME = `{ me { name role scope } }`;

/** The route in the location's hash: #/<page>/<id>?<query>, e.g. #/swarms/alpha?tab=history. */
function parseRoute() {
  const [path, search = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [page = "swarms", ...rest] = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page, id: rest[0] ?? null, params: new URLSearchParams(search) };
}

function useRoute() {
  const [route, setRoute] = useState(parseRoute);
  useEffect(() => {
    const changed = () => setRoute(parseRoute());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

function SignIn({ onSignedIn, refusal }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState(refusal);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    const api = createApi(key.trim());
    try {
      const { me } = await api.query(ME);
      sessionStorage.setItem(KEY_STORAGE, key.trim());
      onSignedIn(api, me);
    } catch (err) {
      api.close();
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="sign-in">
    <h1>swarm-context</h1>
    <form onSubmit=${submit} aria-label="Sign in">
      <label for="key">API key</label>
      <input id="key" name="key" type="password" autocomplete="off" required value=${key} onInput=${(e) => setKey(e.target.value)} />
      <p class="hint">The key is kept for this tab only, and sent to this server alone.</p>
      <button type="submit" disabled=${busy}>Sign in</button>
      <${ErrorNote} error=${error} />
    </form>
  </main>`;
}

function Nav({ me, route, onSignOut }) {
  const link = (page, label) =>
    html`<a href=${`#/${page}`} aria-current=${route.page === page ? "page" : undefined}>${label}</a>`;
  return html`<header class="top">
    <nav aria-label="Main">
      <strong class="brand">swarm-context</strong>
      ${link("swarms", "Swarms")} ${link("feed", "Live feed")} ${link("health", "Health")}
    </nav>
    <div class="who">
      <span title=${`scope: ${me.scope.join(", ")}`}>${me.name} <span class="badge">${me.role.toLowerCase()}</span></span>
      ${onSignOut ? html`<button type="button" class="link" onClick=${onSignOut}>Sign out</button>` : null}
    </div>
  </header>`;
}

function Console() {
  const route = useRoute();
  const [session, setSession] = useState(null);
  const [refusal, setRefusal] = useState(null);
  const [checking, setChecking] = useState(true);

  // A key kept from earlier in this tab, or none (open mode serves without one).
  useEffect(() => {
    const kept = sessionStorage.getItem(KEY_STORAGE);
    const api = createApi(kept);
    api.query(ME).then(
      ({ me }) => setSession({ api, me, keyed: kept !== null }),
      (err) => {
        api.close();
        if (kept !== null) setRefusal(err);
        setChecking(false);
      },
    );
  }, []);
  useEffect(() => {
    if (session) setChecking(false);
  }, [session]);

  if (checking) return html`<p class="loading">Connecting…</p>`;
  if (!session) return html`<${SignIn} refusal=${refusal} onSignedIn=${(api, me) => setSession({ api, me, keyed: true })} />`;
  const signOut = () => {
    sessionStorage.removeItem(KEY_STORAGE);
    session.api.close();
    setSession(null);
    setRefusal(null);
  };
  const { api, me } = session;
  const props = { api, me, route };
  const page =
    route.page === "swarms" && route.id
      ? html`<${SwarmPage} key=${route.id} ...${props} />`
      : route.page === "feed"
        ? html`<${LiveFeed} ...${props} />`
        : route.page === "health"
          ? html`<${HealthPage} ...${props} />`
          : html`<${SwarmList} ...${props} />`;
  return html`<${Nav} me=${me} route=${route} onSignOut=${session.keyed ? signOut : null} />
    <main id="main">${page}</main>`;
}

render(html`<${Console} />`, document.getElementById("app"));
