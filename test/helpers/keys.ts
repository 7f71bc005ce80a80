import { generateKey, hashKey, KeyRing, type Role } from "../../src/security/auth.js";

/** A configured key: its name, role, scope and the secret a client sends. */
export interface TestKey {
  readonly name: string;
  readonly role: Role;
  readonly scope: readonly string[];
  readonly key: string;
  /** `Bearer <key>`: the Authorization header value, and graphql-ws's connectionParams.authorization. */
  readonly authorization: string;
}

/**
 * Keys for tests: an admin, an agent and a viewer, the latter two scoped to contexts whose ids
 * start with `scopePrefix`, and the KeyRing holding them (as a keys file would, by hash).
 */
export function testKeys(scopePrefix = "in-"): { admin: TestKey; agent: TestKey; viewer: TestKey; ring: KeyRing } {
  const make = (name: string, role: Role, scope: string[]): TestKey => {
    const key = generateKey();
    return { name, role, scope, key, authorization: `Bearer ${key}` };
  };
  const admin = make("admin-1", "admin", ["*"]);
  const agent = make("agent-1", "agent", [`${scopePrefix}*`]);
  const viewer = make("viewer-1", "viewer", [`${scopePrefix}*`]);
  const ring = KeyRing.parse(
    JSON.stringify([admin, agent, viewer].map(({ name, role, scope, key }) => ({ name, role, scope, sha256: hashKey(key) }))),
    "test keys",
  );
  return { admin, agent, viewer, ring };
}
