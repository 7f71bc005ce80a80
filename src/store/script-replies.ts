import { createHash, randomUUID } from "node:crypto";
import { AppError, ErrorCode, refusalToError, type ScriptRefusal } from "../errors.js";
import type { Keys } from "../redis/keys.js";

/** What a mutating script answers (see lua/_1-common.lua). */
export type ScriptReply =
  | ({ ok: true } & Record<string, unknown>)
  | { replayed: true; reply: unknown }
  | { retry: true; currentVersion: number }
  | { pending: true }
  | ScriptRefusal;

const OP_ID_MAX_LENGTH = 200;

/** Throws VALIDATION_FAILED (path opId) unless the opId is absent or 1 to 200 characters. */
export function checkOpId(opId: string | null | undefined): void {
  if (opId != null && (opId.length === 0 || opId.length > OP_ID_MAX_LENGTH)) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, `opId must be 1 to ${OP_ID_MAX_LENGTH} characters`, { path: "opId" });
  }
}

/** A short stable hash of a request, to tell a retry from another request under the same opId. */
export function fingerprintOf(parts: readonly unknown[]): string {
  return createHash("sha1").update(JSON.stringify(parts)).digest("base64url");
}

/** Where one script call records its outcome (KEYS op, ARGV fingerprint and seconds to keep it). */
export interface OpRecord {
  readonly key: string;
  readonly fingerprint: string;
  readonly ttlSeconds: number;
  /**
   * True for the client's opId: a replay then answers an earlier request. Otherwise the record
   * belongs to this very call, and a replay is its own first outcome.
   */
  readonly fromClient: boolean;
}

const PROCESS_TOKEN = randomUUID();
let tokenCount = 0;

/**
 * A token no other call, in this process or any other server instance, ever gets: it names a
 * version (a context's head token) or the record of a write sent without an opId.
 */
export function uniqueToken(): string {
  return `${PROCESS_TOKEN}.${++tokenCount}`;
}

/**
 * The record of one write (DESIGN.md Redis rule 3): under the client's opId with the fingerprint
 * of `request` (everything that makes it this operation) for `opIdTtlSeconds`, or, without one,
 * under an id generated for this call for `resendTtlSeconds`, because ioredis resends a command
 * whose reply a dropped connection lost, and that resend must get the first outcome instead of
 * applying the write twice. The request is hashed only for a client's opId.
 */
export function opRecord(
  keys: Keys,
  contextId: string,
  opId: string | null | undefined,
  request: readonly unknown[],
  ttl: { readonly opIdTtlSeconds: number; readonly resendTtlSeconds: number },
): OpRecord {
  if (opId) return { key: keys.op(contextId, opId), fingerprint: fingerprintOf(request), ttlSeconds: ttl.opIdTtlSeconds, fromClient: true };
  return {
    key: keys.resend(contextId, uniqueToken()),
    fingerprint: "",
    ttlSeconds: ttl.resendTtlSeconds,
    fromClient: false,
  };
}

export function parseReply(raw: unknown): ScriptReply {
  return JSON.parse(raw as string) as ScriptReply;
}

/**
 * The reply of a write recorded under `record`. Replaying a generated record means the Redis
 * client resent this very call, so its recorded reply is this call's own first reply and is
 * returned as such; only a client opId's replay stays a replay.
 */
export function parseWriteReply(raw: unknown, record: OpRecord): ScriptReply {
  const reply = parseReply(raw);
  return "replayed" in reply && !record.fromClient ? (reply.reply as ScriptReply) : reply;
}

/**
 * The first reply of a write (fresh or recorded under its opId): throws its refusal, returns its
 * outcome, and says whether it was a replay.
 */
export function settle<T>(reply: ScriptReply): { outcome: T; replayed: boolean } {
  if ("replayed" in reply) return { outcome: settle<T>(reply.reply as ScriptReply).outcome, replayed: true };
  if ("error" in reply) throw refusalToError(reply as ScriptRefusal);
  return { outcome: reply as T, replayed: false };
}
