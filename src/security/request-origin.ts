import type { IncomingHttpHeaders } from "node:http";

/** Whether `host` (a name or address, without port) is loopback: localhost, 127.x.x.x or ::1. */
export function isLoopback(host: string): boolean {
  const name = host.toLowerCase();
  return name === "localhost" || name === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/**
 * The origins a config names (comma-separated, e.g. `https://console.example.com,http://localhost:5173`),
 * each as a browser sends it in `Origin` (lower case, no default port). Throws an Error naming
 * `setting` when one is not an http(s) origin (a path, a query or a wildcard make it something else).
 */
export function parseOrigins(list: string, setting: string): string[] {
  return list
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry) => {
      const url = URL.canParse(entry) ? new URL(entry) : undefined;
      const bare = url && url.pathname === "/" && !url.search && !url.hash && !url.username && !url.password && !entry.includes("*");
      if (!url || !bare || !/^https?:$/.test(url.protocol)) {
        throw new Error(`${setting} takes origins such as https://console.example.com (scheme, host and port only), got "${entry}"`);
      }
      return url.origin;
    });
}

/** Where requests may come from (see foreignRequest). */
export interface OriginPolicy {
  /** Origins other than the server's own whose pages may call it (SWARM_ALLOWED_ORIGINS). */
  readonly allowedOrigins: ReadonlySet<string>;
  /** Serve only requests whose Host is a loopback name (open mode). */
  readonly loopbackHostsOnly: boolean;
}

/** The host name of a Host header (`name:port`, `[v6]:port`), without the port. */
function hostName(host: string): string {
  return host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.split(":")[0]!;
}

/** Whether `origin` is the server's own as the request addressed it (`host`), over http or https (a TLS proxy in front). */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  // "null" (a sandboxed frame, a file) is no URL, and so no one's origin.
  if (host === undefined || !URL.canParse(origin)) return false;
  const { protocol, host: originHost } = new URL(origin);
  const addressed = `${protocol}//${host}`;
  return /^https?:$/.test(protocol) && URL.canParse(addressed) && new URL(addressed).host === originHost;
}

/**
 * Why a request may not be served because of where it comes from, or undefined if it may. A
 * browser sends `Origin` with every cross-origin request and WebSocket upgrade: one that is
 * neither the server's own nor in `allowedOrigins` is a page of another site, which must not drive
 * this server (in open mode, everyone is an admin). With `loopbackHostsOnly`, a `Host` that is not
 * a loopback name is a page that reached a loopback server by DNS rebinding (its own name now
 * resolving to 127.0.0.1), and is refused too. Requests without an Origin (curl, agents) are
 * served.
 */
export function foreignRequest(headers: IncomingHttpHeaders, policy: OriginPolicy): string | undefined {
  const { host, origin } = headers;
  if (policy.loopbackHostsOnly && !(host !== undefined && isLoopback(hostName(host)))) {
    return `with no API keys this server answers to loopback names only (localhost, 127.x.x.x, [::1]), not ${JSON.stringify(host ?? "")}: configure keys to serve other names (docs/security.md)`;
  }
  if (origin === undefined || policy.allowedOrigins.has(origin) || isSameOrigin(origin, host)) return undefined;
  return `pages of ${origin} may not call this server: it serves its own origin and those in SWARM_ALLOWED_ORIGINS (docs/security.md)`;
}
