// Proves the client stays a small package of its own: its sources import nothing but graphql-ws (with ws, which graphql-ws needs on Node), Node's built-ins and each other, and package.json exports it as swarm-context/client with its types.
import { readdirSync, readFileSync } from "node:fs";
import { expect, test } from "vitest";

test("client/src imports only graphql-ws, ws, node: built-ins and its own files", () => {
  const imported = new Set<string>();
  for (const file of readdirSync("client/src")) {
    const source = readFileSync(`client/src/${file}`, "utf8");
    for (const [, specifier] of source.matchAll(/(?:from|import\()\s*"([^"]+)"/g)) {
      if (!specifier!.startsWith("./")) imported.add(specifier!);
    }
  }
  expect([...imported].filter((s) => !s.startsWith("node:")).sort()).toEqual(["graphql-ws", "ws"]);
});

test("package.json exports swarm-context/client with types, built by npm install (prepare)", () => {
  const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { name: string; exports: Record<string, unknown>; scripts: Record<string, string> };
  expect(pkg.name).toBe("swarm-context");
  expect(pkg.exports["./client"]).toEqual({ types: "./client/dist/index.d.ts", default: "./client/dist/index.js" });
  expect(pkg.scripts.prepare).toBe("npm run build:client");
});
