// Proves which requests the origin and host checks let through: no Origin, the server's own origin and the allowed ones, and in open mode only loopback host names; and that SWARM_ALLOWED_ORIGINS takes exact origins only.
import { expect, test } from "vitest";
import { loadConfig } from "../../src/config.js";
import { foreignRequest, parseOrigins, type OriginPolicy } from "../../src/security/request-origin.js";

const keyed: OriginPolicy = { allowedOrigins: new Set(["https://console.example.com"]), loopbackHostsOnly: false };
const open: OriginPolicy = { ...keyed, loopbackHostsOnly: true };

test("allowed origins are exact http(s) origins, normalized as browsers send them", () => {
  expect(parseOrigins("", "S")).toEqual([]);
  expect(parseOrigins(" https://Console.Example.com , http://localhost:5173/,https://a.example:443", "S")).toEqual([
    "https://console.example.com",
    "http://localhost:5173",
    "https://a.example",
  ]);
  for (const bad of ["console.example.com", "https://*.example.com", "https://a.example/console", "https://a.example?x", "ftp://a.example", "null", "https://u:p@a.example"]) {
    expect(() => parseOrigins(bad, "--allowed-origins / SWARM_ALLOWED_ORIGINS")).toThrow(/--allowed-origins \/ SWARM_ALLOWED_ORIGINS takes origins/);
  }
  expect(loadConfig([], {}).allowedOrigins).toEqual([]);
  expect(loadConfig([], { SWARM_ALLOWED_ORIGINS: "https://console.example.com" }).allowedOrigins).toEqual(["https://console.example.com"]);
  expect(() => loadConfig(["--allowed-origins", "*"], {})).toThrow(/--allowed-origins/);
});

test("requests without an Origin, from the server's own origin (http or https) or from an allowed one pass; other pages do not", () => {
  const host = "swarm.example.com";
  expect(foreignRequest({ host }, keyed)).toBeUndefined();
  expect(foreignRequest({ host, origin: "https://swarm.example.com" }, keyed)).toBeUndefined();
  expect(foreignRequest({ host: "swarm.example.com:8080", origin: "http://swarm.example.com:8080" }, keyed)).toBeUndefined();
  expect(foreignRequest({ host: "swarm.example.com:443", origin: "https://swarm.example.com" }, keyed)).toBeUndefined();
  expect(foreignRequest({ host, origin: "https://console.example.com" }, keyed)).toBeUndefined();
  for (const origin of ["https://evil.example", "https://swarm.example.com.evil.example", "http://swarm.example.com:8080", "null", "file://", "https://console.example.com.evil"]) {
    expect([origin, foreignRequest({ host, origin }, keyed)]).toEqual([origin, expect.stringContaining(`pages of ${origin}`)]);
  }
});

test("in open mode only loopback host names are served, with any port", () => {
  for (const host of ["localhost", "localhost:4000", "LOCALHOST:1", "127.0.0.1", "127.1.2.3:80", "[::1]", "[::1]:4000"]) {
    expect([host, foreignRequest({ host }, open)]).toEqual([host, undefined]);
  }
  for (const host of [undefined, "", "evil.example", "evil.example:4000", "localhost.evil.example", "127.0.0.1.evil.example", "[::2]:4000", "0.0.0.0", "192.168.1.2"]) {
    expect([host, foreignRequest({ host }, open)]).toEqual([host, expect.stringContaining("loopback names only")]);
  }
  expect(foreignRequest({ host: "evil.example" }, keyed)).toBeUndefined();
});
