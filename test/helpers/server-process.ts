import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface ServerProcess {
  readonly child: ChildProcess;
  /** The GraphQL endpoint, once the server logs that it listens; rejects if it exits first. */
  readonly url: Promise<string>;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  /** Every JSON log line written so far, parsed. */
  readonly logs: Record<string, unknown>[];
  /** What it wrote to stderr so far. */
  stderr(): string;
}

/**
 * Spawns `src/main.ts` with `args` and the environment `env` (rate limits off unless `env`
 * sets them, as testConfig has them).
 */
export function spawnServer(args: readonly string[], env: NodeJS.ProcessEnv = process.env): ServerProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", ...args], {
    env: { SWARM_RATE_LIMIT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const logs: Record<string, unknown>[] = [];
  const url = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      logs.push(entry);
      if (entry.msg === "listening") resolve(entry.url as string);
    });
    void exited.then((code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
  url.catch(() => undefined); // a caller that expects the exit need not await the URL
  return { child, url, exited, logs, stderr: () => stderr };
}
