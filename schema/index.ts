import { lexicographicSortSchema } from "graphql";
import { builder } from "./builder.js";
import "./scalars.js";
import "./errors.js";
import "./change.js";
import "./health.js";
import "./swarm-context.js";
import "./ledger.js";
import "./feed.js";

builder.queryType({ description: "Reads." });
builder.mutationType({ description: "Writes. Every mutation accepts `opId` for idempotent retries." });

/** The whole API, types sorted by name. */
export const schema = lexicographicSortSchema(builder.toSchema());
