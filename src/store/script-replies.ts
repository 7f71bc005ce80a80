import { createHash } from "node:crypto";
import { AppError, ErrorCode, refusalToError, type ScriptRefusal } from "../errors.js";

/** What a mutating script answers (see lua/_1-common.lua). */
export type ScriptReply =
  | ({ ok: true } & Record<string, unknown>)
  | { replayed: true; reply: unknown }
  | { retry: true; currentVersion: number }
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

export function parseReply(raw: unknown): ScriptReply {
  return JSON.parse(raw as string) as ScriptReply;
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
