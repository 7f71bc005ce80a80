import type { FeedHub } from "../src/feed/feed-hub.js";
import type { ContextStore } from "../src/store/contexts.js";
import type { LedgerStore } from "../src/store/ledger.js";

/** What every resolver gets besides its arguments: the stores and who is asking. */
export interface RequestContext {
  readonly contexts: ContextStore;
  readonly ledger: LedgerStore;
  /** The change feed's subscriptions. */
  readonly feed: FeedHub;
  /** Recorded as `actor` on every change this request makes. */
  readonly actor: string;
  /** Round-trip time to Redis in milliseconds, or throws when Redis is unreachable. */
  readonly pingRedis: () => Promise<number>;
}
