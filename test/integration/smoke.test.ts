// Proves the server answers the basic context operations end to end over HTTP against real Redis.
import { afterAll, beforeAll, expect, test } from "vitest";
import { CreateContextDocument, GetContextDocument, PatchContextDocument } from "../gql/graphql.js";
import { startTestServer, type TestServer } from "../helpers/app.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

test("create, patch, read", async () => {
  const created = await server.data(CreateContextDocument, { id: "s1", document: { a: 1 } });
  expect(created.createContext.version).toBe(1);
  const patched = await server.data(PatchContextDocument, { id: "s1", patch: [{ op: "add", path: "/b", value: 2 }] });
  expect(patched.patchContext.version).toBe(2);
  const read = await server.data(GetContextDocument, { id: "s1" });
  expect(read.context?.document).toEqual({ a: 1, b: 2 });
});
