import { createHash, randomBytes } from "node:crypto";

/** What a key may do; see README "Security" for the table. */
export type Role = "admin" | "agent" | "viewer";

export const ROLES: readonly Role[] = ["admin", "agent", "viewer"];

/** Who is asking: the key's name (recorded as `actor`), its role and its scope. */
export interface Principal {
  readonly name: string;
  readonly role: Role;
  /** Context-id patterns (`*` matches any run of characters); an admin's scope is ignored. */
  readonly scope: readonly string[];
}

/** A key as kept at rest: its SHA-256, never the key itself. */
export interface KeyEntry extends Principal {
  readonly sha256: string;
}

/** Everyone, in open mode (no keys configured): an admin named "anonymous". */
export const OPEN_PRINCIPAL: Principal = Object.freeze({ name: "anonymous", role: "admin", scope: ["*"] });

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/;
/** Patterns use context-id characters plus `*`. */
const PATTERN = /^[A-Za-z0-9._:@*-]{1,128}$/;
const HEX_SHA256 = /^[0-9a-f]{64}$/;

/** The hex SHA-256 of a key: what the keys file holds. Keys are 256 random bits, so no salt is needed. */
export function hashKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** A new random key, `sc_` and 43 base64url characters (256 bits). */
export function generateKey(): string {
  return `sc_${randomBytes(32).toString("base64url")}`;
}

const compiled = new Map<string, RegExp>();

/** Whether `contextId` matches one of `scope`'s patterns. */
export function inScope(scope: readonly string[], contextId: string): boolean {
  for (const pattern of scope) {
    if (pattern === "*") return true;
    let re = compiled.get(pattern);
    if (!re) {
      re = new RegExp(`^${pattern.split("*").map((part) => part.replace(/[.]/g, "\\.")).join(".*")}$`);
      compiled.set(pattern, re);
    }
    if (re.test(contextId)) return true;
  }
  return false;
}

/** Ids starting with `prefix`, or (exact) the id `prefix` alone. */
export interface IdRange {
  readonly prefix: string;
  readonly exact: boolean;
}

/**
 * The ids `principal` may see, as id ranges: "all" for an admin or a `*` pattern; the ranges of
 * its patterns when each is an id or ends in its only `*`; null when a pattern has a `*` elsewhere
 * (the scope is then no union of prefixes). Ranges may overlap.
 */
export function scopeRanges(principal: Principal): readonly IdRange[] | "all" | null {
  if (principal.role === "admin") return "all";
  const ranges: IdRange[] = [];
  for (const pattern of principal.scope) {
    const star = pattern.indexOf("*");
    if (star === -1) ranges.push({ prefix: pattern, exact: true });
    else if (star === pattern.length - 1) ranges.push({ prefix: pattern.slice(0, -1), exact: false });
    else return null;
  }
  return ranges.some((r) => r.prefix === "" && !r.exact) ? "all" : ranges;
}

/** Whether `principal` may touch context `contextId` at all (its role decides what it may do there). */
export function mayAccess(principal: Principal, contextId: string): boolean {
  return principal.role === "admin" || inScope(principal.scope, contextId);
}

/**
 * The configured API keys. Built from the JSON of a keys file or of SWARM_API_KEYS: an array of
 * `{ name, role, scope: [pattern], sha256 }`. An empty array is refused: no keys means open mode,
 * which is asked for by configuring none.
 */
export class KeyRing {
  private readonly byHash: ReadonlyMap<string, Principal>;

  private constructor(entries: readonly KeyEntry[]) {
    this.byHash = new Map(entries.map((e) => [e.sha256, Object.freeze({ name: e.name, role: e.role, scope: Object.freeze([...e.scope]) })]));
  }

  /** Parses and checks the keys JSON; throws an Error naming `source` and the bad entry. */
  static parse(json: string, source: string): KeyRing {
    let raw: unknown;
    try {
      raw = JSON.parse(json);
    } catch (err) {
      throw new Error(`${source} is not JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(raw) || raw.length === 0) throw new Error(`${source} must be a non-empty JSON array of keys`);
    const names = new Set<string>();
    const hashes = new Set<string>();
    const entries = raw.map((entry: unknown, i): KeyEntry => {
      const where = `${source}[${i}]`;
      if (typeof entry !== "object" || entry === null) throw new Error(`${where} must be an object`);
      const { name, role, scope, sha256 } = entry as Record<string, unknown>;
      if (typeof name !== "string" || !NAME.test(name)) throw new Error(`${where}.name must match ${NAME.source}`);
      if (!ROLES.includes(role as Role)) throw new Error(`${where}.role must be one of ${ROLES.join(", ")}`);
      if (!Array.isArray(scope) || scope.length === 0 || !scope.every((p) => typeof p === "string" && PATTERN.test(p))) {
        throw new Error(`${where}.scope must be a non-empty array of context-id patterns (characters A-Za-z0-9._:@- and *)`);
      }
      if (typeof sha256 !== "string" || !HEX_SHA256.test(sha256)) {
        throw new Error(`${where}.sha256 must be the key's SHA-256 in lowercase hex (npm run -s key prints it)`);
      }
      if (names.has(name)) throw new Error(`${where}.name ${name} is used twice: names are the actors of changes`);
      if (hashes.has(sha256)) throw new Error(`${where} repeats another entry's key`);
      names.add(name);
      hashes.add(sha256);
      return { name, role: role as Role, scope: scope as string[], sha256 };
    });
    return new KeyRing(entries);
  }

  /** The principal holding `key`, or null for a key that is not configured. */
  principalOf(key: string): Principal | null {
    // Looked up by digest: timing can reveal at most how much of a digest matched, which says
    // nothing usable about a key.
    return this.byHash.get(hashKey(key)) ?? null;
  }
}
