// Proves the import rules of docs/architecture.md hold in the source: every import goes down the layers (main -> server -> schema -> resolvers -> feed -> store -> ... -> errors), no module imports itself through others, only src/server/ imports GraphQL libraries or the schema among src/, and product code never imports tests or benchmarks.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { expect, test } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** The layers, highest first: a module may import its own layer's modules and those of later layers only. */
const LAYERS = [
  "main",
  "server",
  "config",
  "schema",
  "resolvers",
  "feed",
  "store",
  "security",
  "redis",
  "observability",
  "model",
  "json",
  "errors",
] as const;
type Layer = (typeof LAYERS)[number];

/** The layer of a product module (repo-relative path), or undefined for tests, benchmarks and support. */
function layerOf(file: string): Layer | undefined {
  if (file === "src/main.ts") return "main";
  if (file === "src/config.ts") return "config";
  if (file === "src/errors.ts") return "errors";
  const [top, sub] = file.split("/");
  if (top === "schema" || top === "resolvers") return top;
  if (top !== "src") return undefined;
  if ((LAYERS as readonly string[]).includes(sub!)) return sub as Layer;
  throw new Error(`${file} is in no layer: add its folder to LAYERS and docs/architecture.md`);
}

function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) return sources(rel);
    return entry.name.endsWith(".ts") ? [rel] : [];
  });
}

/** Every import specifier of a module (static, side-effect-only and dynamic imports, re-exports). */
function specifiers(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  const pattern = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|(?:^|\n)\s*import\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)/g;
  return [...text.matchAll(pattern)].map((m) => (m[1] ?? m[2] ?? m[3])!);
}

/** A relative specifier as the repo-relative .ts path it names. */
function resolveLocal(from: string, specifier: string): string {
  return path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier)).replace(/\.js$/, ".ts");
}

const PRODUCT = ["src", "schema", "resolvers"].flatMap(sources);
const ALL = [...PRODUCT, ...["test", "bench", "support"].flatMap(sources)];
const imports = new Map(ALL.map((file) => [file, specifiers(file)]));
const localImports = (file: string) => imports.get(file)!.filter((s) => s.startsWith(".")).map((s) => resolveLocal(file, s));

test("every import of a product module goes down the layers, or stays in its own", () => {
  const upward: string[] = [];
  for (const file of PRODUCT) {
    const rank = LAYERS.indexOf(layerOf(file)!);
    for (const target of localImports(file)) {
      const layer = layerOf(target);
      if (layer === undefined || LAYERS.indexOf(layer) < rank) upward.push(`${file} (${layerOf(file)}) imports ${target} (${layer ?? "not product code"})`);
    }
  }
  expect(upward).toEqual([]);
});

test("no module imports itself through others", () => {
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const visit = (file: string, trail: string[]) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") {
      cycles.push([...trail.slice(trail.indexOf(file)), file].join(" -> "));
      return;
    }
    state.set(file, "open");
    for (const target of localImports(file)) if (imports.has(target)) visit(target, [...trail, file]);
    state.set(file, "done");
  };
  for (const file of ALL) visit(file, []);
  expect(cycles).toEqual([]);
});

test("among src/, only src/server/ imports GraphQL libraries or the schema", () => {
  const graphql = /^(graphql|graphql-yoga|graphql-ws|@pothos\/.*|@graphql-.*)$/;
  const found = PRODUCT.filter((file) => file.startsWith("src/") && !file.startsWith("src/server/")).flatMap((file) =>
    imports.get(file)!
      .filter((s) => graphql.test(s) || (s.startsWith(".") && resolveLocal(file, s).startsWith("schema/")))
      .map((s) => `${file} imports ${s}`),
  );
  expect(found).toEqual([]);
});

test("product code imports no tests, benchmarks or test support; benchmarks import no tests", () => {
  const found = [
    ...PRODUCT.flatMap((file) => localImports(file).filter((t) => /^(test|bench|support)\//.test(t)).map((t) => `${file} imports ${t}`)),
    ...sources("bench").flatMap((file) => localImports(file).filter((t) => t.startsWith("test/")).map((t) => `${file} imports ${t}`)),
  ];
  expect(found).toEqual([]);
});

test("the import parser sees what it checks", () => {
  // A rule over no imports would pass for the wrong reason.
  expect(localImports("src/server/app.ts")).toContain("schema/index.ts");
  expect(imports.get("src/server/app.ts")).toContain("graphql-yoga");
  expect(PRODUCT.length).toBeGreaterThan(60);
});
