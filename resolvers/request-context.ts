import type { Principal } from "../src/security/auth.js";
import type { FeedHub } from "../src/feed/feed-hub.js";
import type { StateGuard } from "../src/redis/state-guard.js";
import type { ContextStore } from "../src/store/contexts.js";
import type { LedgerStore } from "../src/store/ledger.js";
import type { ServerInstance } from "../src/store/instances.js";
import type { ResponseReads } from "./response-reads.js";

/** What every resolver gets besides its arguments: the stores and who is asking. */
export interface RequestContext {
  readonly contexts: ContextStore;
  readonly ledger: LedgerStore;
  /** The change feed's subscriptions. */
  readonly feed: FeedHub;
  /** Who is asking; its name is recorded as `actor` on every change this request makes. */
  readonly principal: Principal;
  /** Whether Redis still holds the deployment's state. */
  readonly state: StateGuard;
  /** What this response has read: its byte bound, and allocations read once. */
  readonly reads: ResponseReads;
  /** Round-trip time to Redis in milliseconds, or throws when Redis is unreachable. */
  readonly pingRedis: () => Promise<number>;
  /** The running server instances, from their heartbeats (store/instances.ts readInstances). */
  readonly serverInstances: () => Promise<ServerInstance[]>;
}
