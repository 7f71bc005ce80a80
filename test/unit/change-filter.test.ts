// Proves the change filter's rules: JSON Pointer overlap on whole segments, the path filter only for UPDATED/ROLLED_BACK, and kinds, actors and excludeActors together.
import { expect, test } from "vitest";
import { matchesChange, wantsContext, type ChangeFilter } from "../../src/feed/change-filter.js";
import type { ChangeEntry } from "../../src/model/change.js";

const none: ChangeFilter = { contextIds: null, idPrefix: null, paths: null, kinds: null, actors: null, excludeActors: null, scope: null };
const change = (kind: string, paths: string[], actor = "agent-1"): ChangeEntry => ({
  contextId: "c",
  seq: 1,
  version: 1,
  kind,
  paths,
  patch: [],
  actor,
  reason: null,
  at: "2026-01-01T00:00:00.000Z",
  allocation: null,
  lock: null,
});

test("the path filter restricts UPDATED and ROLLED_BACK only", () => {
  const filter = { ...none, paths: ["/policy"] };
  expect(matchesChange(filter, change("UPDATED", ["/blackboard/x"]))).toBe(false);
  expect(matchesChange(filter, change("UPDATED", ["/blackboard/x", "/policy/allocation"]))).toBe(true);
  expect(matchesChange(filter, change("ROLLED_BACK", [""]))).toBe(true);
  expect(matchesChange(filter, change("ALLOCATED", []))).toBe(true);
  expect(matchesChange({ ...filter, kinds: ["UPDATED"] }, change("ALLOCATED", []))).toBe(false);
});

test("actors and excludeActors select by who made the change", () => {
  expect(matchesChange({ ...none, actors: ["agent-1"] }, change("UPDATED", [""], "agent-1"))).toBe(true);
  expect(matchesChange({ ...none, actors: ["agent-1"] }, change("UPDATED", [""], "agent-2"))).toBe(false);
  expect(matchesChange({ ...none, excludeActors: ["agent-1"] }, change("UPDATED", [""], "agent-1"))).toBe(false);
  expect(matchesChange({ ...none, excludeActors: ["agent-1"] }, change("UPDATED", [""], "agent-2"))).toBe(true);
  expect(matchesChange({ ...none, actors: ["agent-1"], excludeActors: ["agent-1"] }, change("UPDATED", [""], "agent-1"))).toBe(false);
});

test("contextIds and idPrefix select contexts, both applying when both are given", () => {
  expect(wantsContext({ ...none, contextIds: ["a", "b"] }, "b")).toBe(true);
  expect(wantsContext({ ...none, contextIds: ["a", "b"] }, "c")).toBe(false);
  expect(wantsContext({ ...none, idPrefix: "swarm-" }, "swarm-1")).toBe(true);
  expect(wantsContext({ ...none, idPrefix: "swarm-" }, "other")).toBe(false);
  expect(wantsContext({ ...none, contextIds: ["swarm-1", "x"], idPrefix: "swarm-" }, "x")).toBe(false);
  expect(wantsContext(none, "anything")).toBe(true);
});

test("a scope admits only the contexts its patterns match, on top of contextIds and idPrefix", () => {
  const scoped = { ...none, scope: ["team-a-*", "shared"] };
  expect(wantsContext(scoped, "team-a-1")).toBe(true);
  expect(wantsContext(scoped, "shared")).toBe(true);
  expect(wantsContext(scoped, "shared-2")).toBe(false);
  expect(wantsContext(scoped, "team-b-1")).toBe(false);
  expect(wantsContext({ ...scoped, idPrefix: "team-" }, "team-b-1")).toBe(false);
  expect(wantsContext({ ...scoped, contextIds: ["team-a-1"] }, "team-a-1")).toBe(true);
});
