// Proves the client's withLock: 8 agents x 100 sections never overlap (no lost increment, tokens strictly increasing), the lock is released when the section throws, and an agent process paused past its lease is told (lock.lost) and its fenced writes are refused.
import { expect, test } from "vitest";
import { SwarmError } from "swarm-context/client";
import { useTestServer } from "../helpers/app.js";
import { useClients } from "../helpers/clients.js";
import { spawnJsonLines } from "../helpers/json-lines-process.js";

const a = useTestServer();
const b = useTestServer(() => ({ keyPrefix: a.config.keyPrefix }));
const client = useClients();
const swarm = (url: string, id: string, agent?: string) => client(url, { agent }).swarm(id);

test("8 agents x 100 sections with withLock: no two sections overlap, no increment is lost", async () => {
  const id = "client-lock-race";
  await swarm(a.url, id).create({ counter: 0 });
  let inside = 0;
  let overlaps = 0;
  const tokens: number[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async (_, agent) => {
      const mine = swarm(agent % 2 ? a.url : b.url, id, `agent-${agent}`);
      for (let section = 0; section < 100; section++) {
        await mine.withLock("counter", async (lock) => {
          if (++inside > 1) overlaps++;
          tokens.push(lock.token);
          const counter = (await mine.value("/counter")) as number;
          await lock.patch([{ op: "replace", path: "/counter", value: counter + 1 }]);
          inside--;
        });
      }
    }),
  );
  expect(overlaps).toBe(0);
  expect(await swarm(a.url, id).value("/counter")).toBe(800);
  expect(tokens).toEqual(Array.from({ length: 800 }, (_, i) => i + 1));
});

test("withLock releases the lock when the section throws, and returns what the section returns", async () => {
  const id = "client-lock-throw";
  const mine = swarm(a.url, id);
  await mine.create({});
  await expect(mine.withLock("l", () => Promise.reject(new Error("step failed")))).rejects.toThrow("step failed");
  // Released, not left to its lease: the next acquisition does not wait for it.
  const other = swarm(b.url, id, "other");
  expect(await other.withLock("l", (lock) => lock.token, { waitMs: 0 })).toBe(2);
  const held = await other.withLock("l", async () => {
    const refusal = await mine.withLock("l", () => "never", { waitMs: 0 }).catch((err: unknown) => err);
    return refusal;
  });
  expect(held).toBeInstanceOf(SwarmError);
  expect(held).toMatchObject({ code: "LOCK_HELD", extensions: { holder: "other" } });
});

test("an agent paused past its lease is told its lock is lost, and its fenced writes are refused", async () => {
  const id = "client-lock-paused";
  await swarm(a.url, id).create({});
  const holder = spawnJsonLines(process.execPath, ["--import", "tsx", "test/helpers/paused-lock-holder.ts", a.url, id, "turn"]);
  const { child, lines: events } = holder;
  try {
    await holder.until((lines) => lines.some((e) => e.event === "wrote"), "a first fenced write");
    child.kill("SIGSTOP");
    // Another agent gets the lock once the paused one's lease has run out, and writes with its fence.
    const other = swarm(b.url, id, "other");
    const token = await other.withLock("turn", async (lock) => {
      await lock.merge({ holder: "other" });
      return lock.token;
    });
    expect(token).toBe(2);
    child.kill("SIGCONT");
    expect(await holder.exited, holder.stderr()).toBe(0);
    expect(events.filter((e) => e.event === "refused" || e.event === "lost")).toEqual([
      { event: "refused", code: "STALE_FENCE" },
      { event: "lost", code: "STALE_FENCE" },
    ]);
    expect(await other.value("/holder")).toBe("other");
  } finally {
    child.kill("SIGKILL");
  }
});
