import type { JsonObject } from "../json/types.js";

/** A version of a context's document, named by its head token (unique per write). */
export interface Head {
  readonly version: number;
  readonly head: string;
  readonly document: JsonObject;
  /** UTF-8 bytes of the document's JSON. */
  readonly bytes: number;
}

/**
 * Parsed documents by context id, least recently used evicted first once `maxBytes` of JSON is
 * held. Only ever a hint: every read and write checks the version in Redis.
 */
export class DocumentCache {
  private readonly entries = new Map<string, Head>();
  private bytes = 0;

  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}

  get(id: string): Head | undefined {
    const entry = this.entries.get(id);
    if (entry) {
      this.entries.delete(id);
      this.entries.set(id, entry);
    }
    return entry;
  }

  set(id: string, head: Head): void {
    this.delete(id);
    if (head.bytes > this.maxBytes) return;
    this.entries.set(id, head);
    this.bytes += head.bytes;
    for (const [oldId, old] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldId);
      this.bytes -= old.bytes;
    }
  }

  delete(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.bytes -= entry.bytes;
  }
}
