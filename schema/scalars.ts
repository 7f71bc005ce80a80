import { GraphQLError, Kind, valueFromASTUntyped } from "graphql";
import type { JsonValue } from "../src/json/types.js";
import { builder } from "./builder.js";

builder.scalarType("JSON", {
  description: "Any JSON value: object, array, string, number, boolean or null.",
  serialize: (value) => value as JsonValue,
  parseValue: (value) => value as JsonValue,
  parseLiteral: (ast, variables) => valueFromASTUntyped(ast, variables) as JsonValue,
});

const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function parseDateTime(value: unknown): string {
  if (typeof value !== "string" || !ISO_8601.test(value) || Number.isNaN(Date.parse(value))) {
    throw new GraphQLError(`DateTime must be an ISO 8601 string such as 2026-01-31T12:00:00.000Z`);
  }
  return value;
}

builder.scalarType("DateTime", {
  description: "An instant as an ISO 8601 string in UTC, e.g. 2026-01-31T12:00:00.000Z.",
  serialize: (value) => value,
  parseValue: parseDateTime,
  parseLiteral: (ast) => parseDateTime(ast.kind === Kind.STRING ? ast.value : null),
});
