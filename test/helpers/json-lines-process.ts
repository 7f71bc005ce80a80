import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { collect } from "./collect.js";

/** A child process that prints one JSON object per line (the examples, test agents). */
export interface JsonLinesProcess<Line = Record<string, unknown>> {
  readonly child: ChildProcess;
  /** Every line printed so far, parsed. */
  readonly lines: Line[];
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  /** Resolves once `check(lines)` holds; rejects, with the lines and stderr, if the process ends first. */
  until(check: (lines: readonly Line[]) => boolean, what: string): Promise<void>;
  /** What it wrote to stderr so far. */
  stderr(): string;
}

/** Spawns `command args` with the environment `env`. */
export function spawnJsonLines<Line = Record<string, unknown>>(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): JsonLinesProcess<Line> {
  const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  child.on("error", (err) => (stderr += String(err))); // not installed: the test fails saying so
  const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
  const printed = collect(
    (async function* () {
      for await (const line of createInterface({ input: child.stdout! })) yield JSON.parse(line) as Line;
    })(),
  );
  return {
    child,
    lines: printed.items,
    exited,
    stderr: () => stderr,
    until: (check, what) =>
      printed.until(check, what).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(printed.items)} ${stderr}`);
      }),
  };
}
