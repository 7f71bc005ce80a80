// What one paused subscriber costs the server: `npx tsx bench/paused-subscriber.ts [paused|none] [changes]` starts the server (bench/serve.ts, keep-alive pings out of the way, SWARM_* from the environment), subscribes over WebSocket and stops reading (`paused`) or does not subscribe (`none`), writes `changes` changes of 5 KB, and prints the server's peak RSS and where the subscriber was ended.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import WebSocket from "ws";
import { startRedisServer } from "../support/redis-server.js";
import { rssKb } from "./proc.js";

const mode = process.argv[2] ?? "paused";
const changes = Number(process.argv[3] ?? 20_000);
const WRITERS = 8;
const blob = "x".repeat(5_000);

const rssMb = (pid: number) => rssKb(pid) / 1024;

async function post(url: string, query: string, variables: unknown): Promise<any> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
  return res.json();
}

const redis = await startRedisServer();
const child = spawn(process.execPath, ["--import", "tsx", "bench/serve.ts", "app"], {
  env: { SWARM_KEEPALIVE_MS: "1000000000", SWARM_LOG_LEVEL: "warn", ...process.env, BENCH_REDIS_URL: redis.url },
  stdio: ["ignore", "pipe", "inherit"],
});
try {
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => line.startsWith("http") && resolve(line));
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  await post(url, "mutation($d: JSON!) { createContext(id: \"paused\", document: $d) { seq } }", { d: { blob: "" } });

  const messages: { type: string; payload?: any }[] = [];
  let socket: WebSocket | undefined;
  if (mode === "paused") {
    socket = new WebSocket(url.replace(/^http/, "ws"), "graphql-transport-ws");
    const query = "subscription { contextChanges(contextIds: [\"paused\"]) { changes { seq patch } resync { seq } } }";
    await new Promise<void>((resolve) => {
      socket!.on("open", () => socket!.send(JSON.stringify({ type: "connection_init" })));
      socket!.on("message", (data) => {
        const message = JSON.parse(String(data));
        messages.push(message);
        if (message.type === "connection_ack") {
          socket!.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query } }));
          socket!.pause();
          resolve();
        }
      });
    });
  }

  const startMb = rssMb(child.pid!);
  let peakMb = startMb;
  const sampler = setInterval(() => (peakMb = Math.max(peakMb, rssMb(child.pid!))), 50);
  let next = 0;
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (next < changes) {
        const i = next++;
        const res = await post(url, "mutation($v: JSON) { patchContext(id: \"paused\", patch: [{op: replace, path: \"/blob\", value: $v}]) { seq } }", { v: `${i}${blob}` });
        if (res.errors) throw new Error(JSON.stringify(res.errors));
      }
    }),
  );
  clearInterval(sampler);
  const endMb = rssMb(child.pid!);

  let ended = "not subscribed";
  if (socket) {
    socket.resume();
    const settled = await new Promise<boolean>((resolve) => {
      const check = () => messages.some((m) => m.type === "error" || m.type === "complete" || m.payload?.errors) && resolve(true);
      socket!.on("message", check);
      check();
      setTimeout(() => resolve(false), 30_000);
    });
    const seqs = messages.flatMap((m) => m.payload?.data?.contextChanges?.changes?.map((c: { seq: number }) => c.seq) ?? []);
    const error = messages.find((m) => m.payload?.errors)?.payload.errors[0];
    ended = settled ? `ended after seq ${seqs.at(-1)} of ${changes + 1} (${error?.extensions?.code})` : `not ended (${seqs.length} changes received)`;
    socket.close();
  }
  console.log(JSON.stringify({ mode, changes, changeBytes: blob.length, startMb: Math.round(startMb), peakMb: Math.round(peakMb), endMb: Math.round(endMb), subscriber: ended }));
} finally {
  child.kill("SIGKILL");
  await redis.stop();
}
