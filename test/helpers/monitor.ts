import { randomUUID } from "node:crypto";
import { connect, type Socket } from "node:net";

/** What MONITOR reports of one command: its arguments (the name first) and who ran it ("lua" for a script's, else the client's address). */
export type CommandSeen = (args: string[], source: string) => void;

export interface CommandWatch {
  /** Resolves once the watch has seen every command Redis ran before this call. */
  settle(): Promise<void>;
  stop(): void;
}

/** The arguments of a MONITOR line's `"a" "b\"c"` part, unescaped as Redis escapes them (sdscatrepr). */
function parseArgs(text: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] !== '"') {
      i++;
      continue;
    }
    let arg = "";
    for (i++; i < text.length && text[i] !== '"'; i++) {
      if (text[i] !== "\\") {
        arg += text[i];
        continue;
      }
      const next = text[++i]!;
      if (next === "x") {
        arg += String.fromCharCode(parseInt(text.slice(i + 1, i + 3), 16));
        i += 2;
      } else {
        arg += ({ n: "\n", r: "\r", t: "\t", a: "\x07", b: "\b" } as Record<string, string>)[next] ?? next;
      }
    }
    args.push(arg);
    i++;
  }
  return args;
}

function open(redisUrl: string): Socket {
  const url = new URL(redisUrl);
  return connect(Number(url.port || 6379), url.hostname);
}

/**
 * Watches every command the Redis at `redisUrl` runs, through MONITOR on a plain socket of its
 * own. (ioredis's monitor() loses the race between MONITOR's OK and the first line when both come
 * in one read, and then throws "Command queue state error" outside any caller's reach.) Resolves
 * once MONITOR is on.
 */
export async function watchCommands(redisUrl: string, seen: CommandSeen): Promise<CommandWatch> {
  const socket = open(redisUrl);
  const markers = new Map<string, () => void>();
  let buffered = "";
  let on!: () => void;
  let failed!: (err: Error) => void;
  const started = new Promise<void>((resolve, reject) => ((on = resolve), (failed = reject)));
  let monitoring = false;
  socket.setEncoding("latin1");
  socket.on("error", (err) => failed(err));
  socket.on("data", (chunk: string) => {
    buffered += chunk;
    let end: number;
    while ((end = buffered.indexOf("\r\n")) >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (!monitoring) {
        if (line !== "+OK") return failed(new Error(`MONITOR answered ${line}`));
        monitoring = true;
        on();
        continue;
      }
      // +<time> [<db> <source>] "<name>" "<arg>" ...
      const open = line.indexOf("[");
      const close = line.indexOf("]", open);
      const source = line.slice(open + 1, close).split(" ")[1] ?? "";
      const args = parseArgs(line.slice(close + 1));
      if (args[0]?.toLowerCase() === "echo" && markers.has(args[1]!)) {
        markers.get(args[1]!)!();
        continue;
      }
      seen(args, source);
    }
  });
  socket.write("MONITOR\r\n");
  await started;
  return {
    settle: async () => {
      // MONITOR reports commands in the order Redis ran them: once it shows the marker, it has shown everything before.
      const marker = `settle-${randomUUID()}`;
      const shown = new Promise<void>((resolve) => markers.set(marker, resolve));
      const echo = open(redisUrl);
      echo.on("error", () => {});
      echo.once("data", () => echo.destroy());
      echo.write(`*2\r\n$4\r\nECHO\r\n$${marker.length}\r\n${marker}\r\n`);
      await shown;
      markers.delete(marker);
    },
    stop: () => socket.destroy(),
  };
}
