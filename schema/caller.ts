import type { Principal } from "../src/security/auth.js";
import { builder } from "./builder.js";

const Role = builder.enumType("Role", {
  description: "What a key may do (docs/security.md).",
  values: {
    ADMIN: { value: "admin", description: "Everything, on every context." },
    AGENT: { value: "agent", description: "Inside its scope: read, write the document (not the admin settings), the ledger and locks, subscribe." },
    VIEWER: { value: "viewer", description: "Inside its scope: read and subscribe." },
  } as const,
});

const Caller = builder.objectRef<Principal>("Caller").implement({
  description: "The key a request was made with.",
  fields: (t) => ({
    name: t.exposeString("name", { description: 'The key\'s name: the `actor` of the changes it makes ("anonymous" in open mode).' }),
    role: t.field({ type: Role, resolve: (principal) => principal.role }),
    scope: t.exposeStringList("scope", { description: "Context-id patterns (`*` matches any run of characters); an admin's scope is every context." }),
  }),
});

builder.queryField("me", (t) =>
  t.field({
    type: Caller,
    description: "Who this request's key is: what a console shows and which controls it offers. In open mode (no keys configured), an admin named anonymous.",
    resolve: (_root, _args, ctx) => ctx.principal,
  }),
);
