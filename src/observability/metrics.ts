import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { LEDGER_REFUSALS } from "../errors.js";

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LEDGER_OPERATIONS = new Set(["mutation:allocate", "mutation:reportUsage", "mutation:release", "mutation:renewAllocation"]);

/** One finished operation (an HTTP request, an SSE or WebSocket subscribe, a WebSocket query). */
export interface OperationRecord {
  readonly transport: "http" | "ws";
  /** operation-info.ts operationLabel, or "invalid" for a request refused before its document validated. */
  readonly operation: string;
  readonly durationMs: number;
  /** `extensions.code` of each error in the response. */
  readonly codes: readonly string[];
}

/**
 * The server's Prometheus metrics, in a registry of its own (one per app). Names start with
 * `swarm_`; the process's default metrics (CPU, memory, event-loop lag) come along.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: "swarm_requests_total",
    help: "Operations served, by transport and operation (type:root field).",
    labelNames: ["transport", "operation"],
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: "swarm_request_duration_seconds",
    help: "Time from a request's arrival to its response (a subscription: to its start), by operation.",
    labelNames: ["operation"],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  private readonly errors = new Counter({
    name: "swarm_errors_total",
    help: "Errors returned, by extensions.code.",
    labelNames: ["code"],
    registers: [this.registry],
  });
  private readonly ledgerRefusals = new Counter({
    name: "swarm_ledger_refusals_total",
    help: "Ledger operations the budget refused, by operation and code.",
    labelNames: ["operation", "code"],
    registers: [this.registry],
  });
  private readonly feedLag = new Histogram({
    name: "swarm_feed_lag_seconds",
    help: "From a change's commit to its hand-over to subscribers, once per change and distinct subscription (replays included).",
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  private readonly faults = new Counter({
    name: "swarm_faults_total",
    help: "Faults other than Redis being unreachable, by where they happened; each is also logged with its cause (faults.ts).",
    labelNames: ["source"],
    registers: [this.registry],
  });
  private readonly redisLatency = new Histogram({
    name: "swarm_redis_latency_seconds",
    help: "Round trip of the periodic Redis state check (one GET; on a Redis Cluster, one batch of them).",
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  /**
   * `activeSubscriptions` and `stateIntact` are read at each scrape.
   */
  constructor(activeSubscriptions: () => number, stateIntact: () => boolean) {
    new Gauge({
      name: "swarm_active_subscriptions",
      help: "Subscriptions (contextChanges, watchSlice and ledgerRefusals) being served, both transports.",
      registers: [this.registry],
      collect() {
        this.set(activeSubscriptions());
      },
    });
    new Gauge({
      name: "swarm_redis_state_intact",
      help: "1 when Redis holds this deployment's state, 0 while it is lost or unverified (operations refused; on a Redis Cluster, those of the lost or unverified slots).",
      registers: [this.registry],
      collect() {
        this.set(stateIntact() ? 1 : 0);
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  operation(record: OperationRecord): void {
    this.requests.inc({ transport: record.transport, operation: record.operation });
    this.duration.observe({ operation: record.operation }, record.durationMs / 1000);
    for (const code of record.codes) {
      this.errors.inc({ code });
      if (LEDGER_OPERATIONS.has(record.operation) && LEDGER_REFUSALS.has(code)) {
        this.ledgerRefusals.inc({ operation: record.operation, code });
      }
    }
  }

  /** Lag of changes handed to subscribers, in ms. */
  feedLagMs(ms: number): void {
    this.feedLag.observe(ms / 1000);
  }

  /** One fault reported (faults.ts FaultSource). */
  fault(source: string): void {
    this.faults.inc({ source });
  }

  redisRoundTripMs(ms: number): void {
    this.redisLatency.observe(ms / 1000);
  }

  /** The Prometheus text exposition. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
