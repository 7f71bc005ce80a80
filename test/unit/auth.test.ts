// Proves that API keys are kept and checked by hash, that a keys file is refused entry by entry with what is wrong, and that scope patterns match whole context ids.
import { expect, test } from "vitest";
import { generateKey, hashKey, inScope, KeyRing, mayAccess, OPEN_PRINCIPAL } from "../../src/security/auth.js";

const entry = (over: Record<string, unknown> = {}) => ({ name: "planner", role: "agent", scope: ["swarm-a-*"], sha256: hashKey("k1"), ...over });

test("a key is found by its hash; anything else is not a key", () => {
  const ring = KeyRing.parse(JSON.stringify([entry(), entry({ name: "boss", role: "admin", scope: ["*"], sha256: hashKey("k2") })]), "keys.json");
  expect(ring.principalOf("k1")).toEqual({ name: "planner", role: "agent", scope: ["swarm-a-*"] });
  expect(ring.principalOf("k2")?.role).toBe("admin");
  for (const wrong of ["", "k3", "K1", "k1 ", hashKey("k1")]) expect(ring.principalOf(wrong)).toBeNull();
});

test("generated keys are 256 random bits, and their entries hold only the hash", () => {
  const a = generateKey();
  expect(a).toMatch(/^sc_[A-Za-z0-9_-]{43}$/);
  expect(generateKey()).not.toBe(a);
  expect(hashKey(a)).toMatch(/^[0-9a-f]{64}$/);
});

test("a malformed keys file is refused naming the source and the entry", () => {
  const parse = (value: unknown) => () => KeyRing.parse(JSON.stringify(value), "keys.json");
  expect(() => KeyRing.parse("{", "keys.json")).toThrow(/keys.json is not JSON/);
  expect(parse([])).toThrow(/non-empty JSON array/);
  expect(parse([entry({ role: "root" })])).toThrow(/keys.json\[0\].role must be one of admin, agent, viewer/);
  expect(parse([entry({ name: "has space" })])).toThrow(/\[0\].name/);
  expect(parse([entry({ scope: [] })])).toThrow(/\[0\].scope/);
  expect(parse([entry({ scope: ["a{b"] })])).toThrow(/\[0\].scope/);
  expect(parse([entry({ sha256: "k1" })])).toThrow(/\[0\].sha256/);
  expect(parse([entry(), entry({ sha256: hashKey("other") })])).toThrow(/\[1\].name planner is used twice/);
  expect(parse([entry(), entry({ name: "other" })])).toThrow(/\[1\] repeats another entry's key/);
});

test("scope patterns match whole ids, `*` any run of characters, `.` only itself", () => {
  expect(inScope(["swarm-a-*"], "swarm-a-1")).toBe(true);
  expect(inScope(["swarm-a-*"], "swarm-a-")).toBe(true);
  expect(inScope(["swarm-a-*"], "xswarm-a-1")).toBe(false);
  expect(inScope(["swarm-a"], "swarm-a-1")).toBe(false);
  expect(inScope(["a.b"], "a.b")).toBe(true);
  expect(inScope(["a.b"], "axb")).toBe(false);
  expect(inScope(["*-prod", "team-*"], "team-x")).toBe(true);
  expect(inScope(["*-prod"], "x-prod")).toBe(true);
  expect(inScope(["*-prod"], "x-prod-2")).toBe(false);
});

test("admins reach every context whatever their scope; others only their scope's", () => {
  expect(mayAccess({ name: "a", role: "admin", scope: ["none"] }, "anything")).toBe(true);
  expect(mayAccess({ name: "v", role: "viewer", scope: ["in-*"] }, "in-1")).toBe(true);
  expect(mayAccess({ name: "v", role: "viewer", scope: ["in-*"] }, "out-1")).toBe(false);
  expect(mayAccess(OPEN_PRINCIPAL, "anything")).toBe(true);
});
