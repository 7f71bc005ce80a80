import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

/** Ids are at most this many bytes (CONTEXT_ID); each is padded to it so a cursor's length says nothing. */
const ID_BYTES = 128;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Before the id: the order (1 byte: 0 by id, 1 by update time) and the update time (float64, ms). */
const HEAD_BYTES = 9;
const CURSOR_BYTES = IV_BYTES + TAG_BYTES + HEAD_BYTES + ID_BYTES;

/**
 * A position in the contexts list: right after context `id`, and in the order by update time
 * right after the entry (`at`, `id`), `at` being its index score (ms).
 */
export interface ListPosition {
  readonly id: string;
  readonly at?: number;
}

/**
 * Seals positions in the contexts list (ListPosition) into cursors and opens them again. A page
 * may end on an id its caller may not see (the scan stopped there, see ContextStore.list), so a
 * cursor must show nothing of its id, not even its length: AES-256-GCM with a random IV over the
 * id padded to 128 bytes, which also makes a cursor that was not sealed under the same key fail
 * to open. The key is derived from the deployment's epoch (see StateGuard), a random id that every
 * instance shares and no client sees: cursors work on any instance and until a `reinitialize`.
 */
export class ListCursors {
  private readonly key: Buffer;

  /** `epoch`: the value of the deployment's epoch key (a random id of 36 characters or more). */
  constructor(epoch: string) {
    this.key = Buffer.from(hkdfSync("sha256", epoch, "", "swarm-context contexts-list cursors", 32));
  }

  /** The cursor standing for `position` (at most 128 bytes of id). */
  seal(position: ListPosition): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    const plain = Buffer.alloc(HEAD_BYTES + ID_BYTES);
    plain.writeUInt8(position.at === undefined ? 0 : 1, 0);
    plain.writeDoubleBE(position.at ?? 0, 1);
    plain.write(position.id, HEAD_BYTES, "latin1");
    const sealed = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString("base64url");
  }

  /** The position `cursor` stands for, or null when it is not a cursor sealed under this key. */
  open(cursor: string): ListPosition | null {
    const bytes = Buffer.from(cursor, "base64url");
    if (bytes.length !== CURSOR_BYTES) return null;
    const decipher = createDecipheriv("aes-256-gcm", this.key, bytes.subarray(0, IV_BYTES));
    decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    try {
      const plain = Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
      const id = plain.toString("latin1", HEAD_BYTES).replace(/\0+$/, "");
      return plain.readUInt8(0) === 0 ? { id } : { id, at: plain.readDoubleBE(1) };
    } catch {
      return null; // forged, altered, or sealed under an earlier epoch
    }
  }
}
