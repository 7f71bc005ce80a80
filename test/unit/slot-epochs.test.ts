// Proves that on a Redis Cluster every hash slot's epoch key (Keys.slotEpoch) lies in that very slot, so it moves and is lost with the swarms there, and that the copies of the slot epoch registry lie in slots of their own.
import calculateSlot from "cluster-key-slot";
import { expect, test } from "vitest";
import { CLUSTER_SLOTS, EPOCH_REGISTRY_COPIES, Keys } from "../../src/redis/keys.js";

const keys = new Keys("deployment");

test("the epoch key of slot s hashes to s, for every slot", () => {
  const misplaced = Array.from({ length: CLUSTER_SLOTS }, (_, slot) => slot).filter((slot) => calculateSlot(keys.slotEpoch(slot)) !== slot);
  expect(misplaced).toEqual([]);
});

test("the registry copies lie in as many different slots", () => {
  const slots = new Set(Array.from({ length: EPOCH_REGISTRY_COPIES }, (_, copy) => calculateSlot(keys.epochRegistry(copy))));
  expect(slots.size).toBe(EPOCH_REGISTRY_COPIES);
});
