// The change feed's kinds (the schema's ChangeKind), for filters and for telling document changes apart.

/** Every ChangeKind, in the schema's order of meaning: document changes, then ledger, then locks. */
export const CHANGE_KINDS = ["CREATED", "UPDATED", "ROLLED_BACK", "DELETED", "ALLOCATED", "USAGE_REPORTED", "RELEASED", "EXPIRED", "RENEWED", "LOCK_ACQUIRED", "LOCK_RELEASED"];

/** The kinds that make a document version (and carry a patch of it): the versions one can roll back to. */
export const DOCUMENT_KINDS = new Set(["CREATED", "UPDATED", "ROLLED_BACK"]);
