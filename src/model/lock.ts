import { iso } from "./allocation.js";

export interface Lock {
  readonly name: string;
  readonly holder: string;
  readonly token: number;
  readonly expiresAt: string;
}

export interface RawLock {
  name: string;
  holder: string;
  token: number;
  expiresAt: number;
}

/** A lock as the API shows it, from its script encoding. */
export function toLock(raw: RawLock): Lock {
  return { name: raw.name, holder: raw.holder, token: raw.token, expiresAt: iso(raw.expiresAt)! };
}

/** Parses a lock from a feed entry or script reply. */
export function lockFromJson(json: string): Lock {
  return toLock(JSON.parse(json) as RawLock);
}
