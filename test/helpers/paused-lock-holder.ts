/**
 * A separate agent process for the client's lock tests (test/client/lock.test.ts), which pause it
 * with SIGSTOP: `node --import tsx test/helpers/paused-lock-holder.ts <url> <contextId> <lock>`.
 * Inside withLock (lease 1 s) it writes `{ holder: "paused", n }` with the fence every 50 ms until
 * a write is refused, then waits for lock.lost. Prints one JSON line per event: acquired, wrote,
 * refused (code), lost (code).
 */
import { connect, SwarmError } from "swarm-context/client";

const [url, id, name] = process.argv.slice(2) as [string, string, string];
const print = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);
const client = connect({ url, agent: "paused" });
await client.swarm(id).withLock(
  name,
  async (lock) => {
    print({ event: "acquired", token: lock.token });
    for (let n = 0; ; n++) {
      try {
        await lock.merge({ holder: "paused", n });
        print({ event: "wrote", n });
      } catch (err) {
        print({ event: "refused", code: err instanceof SwarmError ? err.code : String(err) });
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    print({ event: "lost", code: (await lock.lost).code });
  },
  { leaseMs: 1000 },
);
await client.close();
