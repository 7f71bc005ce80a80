import SchemaBuilder from "@pothos/core";
import type { RequestContext } from "../resolvers/request-context.js";
import type { JsonValue } from "../src/json/types.js";

export const builder = new SchemaBuilder<{
  Context: RequestContext;
  DefaultFieldNullability: false;
  DefaultInputFieldRequiredness: false;
  Scalars: {
    JSON: { Input: JsonValue; Output: JsonValue };
    DateTime: { Input: string; Output: string };
  };
}>({
  defaultFieldNullability: false,
});
