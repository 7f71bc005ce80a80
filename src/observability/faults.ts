import type { LogFields, Logger } from "./logger.js";
import type { Metrics } from "./metrics.js";

/** Where a fault happened: the `source` label of swarm_faults_total. */
export type FaultSource = "feed-read" | "feed-entry" | "heartbeat" | "lease-sweeper" | "deletion-sweeper" | "rate-limit" | "websocket" | "refusal-notice";

/**
 * Reports a fault other than Redis being unreachable or stalled (those are expected, and retried
 * or answered UNAVAILABLE where they happen): logs `message` at error level with the source,
 * `fields` and the cause's stack, and counts it in swarm_faults_total{source}.
 */
export type ReportFault = (source: FaultSource, message: string, cause: unknown, fields?: LogFields) => void;

/** The ReportFault of one app: writes to `log`, counts in `metrics`. */
export function faultReporter(log: Logger, metrics: Metrics): ReportFault {
  return (source, message, cause, fields = {}) => {
    log.error(message, { source, ...fields, error: cause instanceof Error ? (cause.stack ?? cause.message) : String(cause) });
    metrics.fault(source);
  };
}
