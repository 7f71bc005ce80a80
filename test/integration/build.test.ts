// Proves that `npm run build` yields a server that plain node runs from dist/ alone (`npm run serve`, the sources removed): it serves a context's creation and read on the test Redis and the console's files, and on SIGTERM writes its last log line and exits 0.
import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, inject, test } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "swarm-build-"));
  const { include: typescript } = JSON.parse(readFileSync(path.join(ROOT, "tsconfig.build.json"), "utf8")) as { include: string[] };
  // The sources of a build: the TypeScript and the console's static files.
  const include = [...typescript, "console"];
  for (const entry of ["package.json", "tsconfig.json", "tsconfig.build.json", ...include]) {
    cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true });
  }
  symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  await promisify(execFile)("npm", ["run", "--silent", "build"], { cwd: dir });
  // What runs must be in dist/: no source to fall back on.
  for (const entry of include) rmSync(path.join(dir, entry), { recursive: true });
}, 240_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function graphql(url: string, query: string, variables: Record<string, unknown>): Promise<unknown> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
  return res.json();
}

test("the built server starts with plain node, creates and reads a context, and exits 0 on SIGTERM after logging that it closed", async () => {
  const { NODE_OPTIONS: _loaders, ...env } = process.env;
  const child = spawn("npm", ["run", "--silent", "serve"], {
    cwd: dir,
    env: { ...env, REDIS_URL: inject("redisUrl"), PORT: "0", SWARM_KEY_PREFIX: `t-${randomUUID()}`, SWARM_RATE_LIMIT: "0", SWARM_LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  // "close": the process has exited and its output has been read to the end (its last log line
  // may arrive after "exit").
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const logs: Record<string, unknown>[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on("line", (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      logs.push(entry);
      if (entry.msg === "listening") resolve(entry.url as string);
    });
    void exited.then((code) => reject(new Error(`the built server exited with ${code}: ${stderr}`)));
  });

  expect(await graphql(url, "mutation($id: ID!, $d: JSON!) { createContext(id: $id, document: $d) { version } }", { id: "built", d: { from: "dist" } })).toEqual({
    data: { createContext: { version: 1 } },
  });
  expect(await graphql(url, "query($id: ID!) { context(id: $id) { version document } }", { id: "built" })).toEqual({
    data: { context: { version: 1, document: { from: "dist" } } },
  });

  const listening = logs.find((entry) => entry.msg === "listening")!;
  const page = await fetch(listening.console as string);
  expect([page.status, await page.text()]).toEqual([200, readFileSync(path.join(ROOT, "console", "index.html"), "utf8")]);
  expect(logs.filter((entry) => entry.level === "warn" && String(entry.msg).includes("console"))).toEqual([]);

  child.kill("SIGTERM");
  expect(await exited).toBe(0);
  expect(logs.find((entry) => entry.msg === "request")).toMatchObject({ level: "info", operation: expect.any(String), codes: [] });
  expect(logs.at(-1)).toMatchObject({ level: "info", msg: "closed", drained: true });
});
