// A watcher with swarm-context's client, in plain JavaScript: prints every change of one swarm as
// a JSON line, in order, each once, resuming by itself across disconnects and server restarts.
//
//   SWARM_URL=http://127.0.0.1:4000/graphql SWARM_ID=swarm-1 node examples/watcher.mjs
//
// Settings (environment): SWARM_URL (several, comma-separated, are tried in turn), SWARM_KEY,
// SWARM_ID, SWARM_AFTER (start after this seq; default: now), SWARM_PATHS (comma-separated JSON
// Pointers: only document changes there, and every other kind), SWARM_COUNT (stop after this many).
import { connect } from "swarm-context/client";

const env = process.env;
const client = connect({ url: (env.SWARM_URL ?? "http://127.0.0.1:4000/graphql").split(","), key: env.SWARM_KEY });
const swarm = client.swarm(env.SWARM_ID ?? "swarm-1");
const count = env.SWARM_COUNT === undefined ? Infinity : Number(env.SWARM_COUNT);
const options = {
  after: env.SWARM_AFTER === undefined ? undefined : Number(env.SWARM_AFTER),
  paths: env.SWARM_PATHS?.split(","),
};

let seen = 0;
try {
  for await (const item of swarm.watch(options)) {
    if ("resync" in item) {
      // Changes up to item.resync.seq are gone from the feed: start again from the document.
      const { version, document } = await swarm.document();
      console.log(JSON.stringify({ event: "resync", seq: item.resync.seq, version, keys: Object.keys(document) }));
    } else {
      console.log(JSON.stringify({ event: "change", seq: item.seq, version: item.version, kind: item.kind, paths: item.paths, actor: item.actor }));
    }
    if (++seen >= count) break;
  }
} finally {
  await client.close();
}
