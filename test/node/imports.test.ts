/**
 * The folder rules of docs/development.md ("The map of folders"), checked against the code the way
 * topology-config.test.ts checks wrangler.toml: every source file's imports (static, `export … from`
 * and dynamic `import()`) must run down the layers, no file may reach itself through its imports,
 * and no hand-written source file may be over MAX_LINES lines.
 *
 * Imports are read with a regular expression, not a parser: TypeScript 7 (our compiler) has no
 * JavaScript API. Comments are removed first; what the pattern could still mistake for an import
 * (an import statement inside a string) only counts when it names a file of this repository.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * KNOWN IN FLIGHT — offenders on main that other branches of the issue-18 renovation are fixing
 * (the device twin and MQTT session splits, the bus move out of queues/, the alert actor split).
 * The lead empties these lists when those branches are merged; nothing else may be added here.
 * An entry that no longer offends fails the test too, so the lists cannot go stale.
 */
const ALLOWED_IMPORTS: readonly string[] = [];
const ALLOWED_CYCLES: readonly string[] = [];
const ALLOWED_LONG_FILES: readonly string[] = [];

/** The longest a hand-written source file may be. */
const MAX_LINES = 500;

/**
 * Which top folders each top folder may import from (its own always). functions is the Worker's
 * entry; durable-objects and queues sit under it, side by side, and neither imports the other;
 * platform is the Worker's runtime glue (workerd sockets, Hyperdrive); shared is plain
 * TypeScript every runtime may use. The Node and browser programs (agent, tools, web) use only
 * shared. scripts, bench and test may import anything. An entry with a slash names a path
 * prefix inside a folder (`durable-objects/stubs`: stubs.ts or stubs/).
 */
const MAY_IMPORT: Record<string, readonly string[] | "anything"> = {
  functions: ["durable-objects", "queues", "platform", "shared"],
  "durable-objects": ["platform", "shared"],
  // The consumers reach the objects only through their stubs (the objects' typed RPC surface).
  queues: ["durable-objects/stubs", "platform", "shared"],
  platform: ["shared"],
  shared: [],
  agent: ["shared"],
  tools: ["shared"],
  web: ["shared"],
  infra: ["shared"],
  scripts: "anything",
  bench: "anything",
  test: "anything",
};

const ROOT = resolve(import.meta.dirname, "../..");
const SOURCE = /\.(ts|tsx|mts)$/;
/** Generated, not written by hand: wrangler types writes it. */
const GENERATED = new Set(["worker-configuration.d.ts"]);
const SKIP_DIRS = new Set(["node_modules", "dist", ".git", ".wrangler", ".edgemesh", "test-results"]);

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP_DIRS.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (SOURCE.test(name)) out.push(relative(ROOT, path));
  }
  return out;
}

const files = Object.keys(MAY_IMPORT)
  .flatMap((top) => {
    try {
      return walk(join(ROOT, top));
    } catch {
      return [];
    }
  })
  .filter((file) => !GENERATED.has(file))
  .sort();
const known = new Set(files);
const texts = new Map(files.map((file) => [file, readFileSync(join(ROOT, file), "utf8")]));

/** The repository file a relative specifier names, as a bundler resolves it; undefined for packages. */
function resolveImport(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  const base = relative(ROOT, resolve(ROOT, dirname(from), specifier));
  const stem = base.replace(/\.(js|mjs)$/, "");
  for (const candidate of [base, `${stem}.ts`, `${stem}.tsx`, `${stem}.mts`, `${stem}.d.ts`, join(base, "index.ts")])
    if (known.has(candidate)) return candidate;
  return undefined;
}

/** `import … from "x"`, `export … from "x"`, `import "x"` and `import("x")`. */
const IMPORT =
  /(?:^|[;}\n])\s*(?:import|export)(\s[^;"'`]*?)\bfrom\s*["']([^"'\n]+)["']|(?:^|[;}\n])\s*import\s*["']([^"'\n]+)["']|\bimport\s*\(\s*["']([^"'\n]+)["']\s*\)/g;

interface ImportOf {
  specifier: string;
  /** `import type …`, `export type …`, or braces holding only `type` names: gone at run time. */
  typeOnly: boolean;
}

function typeOnly(clause: string): boolean {
  const text = clause.trim();
  if (/^type\s/.test(text)) return true;
  const names = /^\{([^}]*)\}$/.exec(text)?.[1];
  if (names === undefined) return false;
  const members = names
    .split(",")
    .map((n) => n.trim())
    .filter((n) => n !== "");
  return members.length > 0 && members.every((n) => /^type\s/.test(n));
}

/** The imports of a file, comments left out (block comments and whole-line ones). */
function importsOf(text: string): ImportOf[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  return [...code.matchAll(IMPORT)].map((m) => ({ specifier: m[2] ?? m[3] ?? m[4] ?? "", typeOnly: m[1] !== undefined && typeOnly(m[1]) }));
}

function graphOf(runtimeOnly: boolean): Map<string, string[]> {
  return new Map(
    files.map((file) => {
      const targets = importsOf(texts.get(file) ?? "")
        .filter((i) => !(runtimeOnly && i.typeOnly))
        .map((i) => resolveImport(file, i.specifier))
        .filter((t): t is string => t !== undefined);
      return [file, [...new Set(targets)].sort()];
    }),
  );
}

/** Every file each file imports, type-only imports included: the folder rules hold for types too. */
const graph = graphOf(false);
/** What each file needs at run time: a cycle of type-only imports is erased by the compiler, so it is no cycle. */
const runtimeGraph = graphOf(true);

const top = (file: string) => file.split("/")[0] ?? file;

function breaksRule(from: string, to: string): boolean {
  const rule = MAY_IMPORT[top(from)];
  if (rule === undefined || rule === "anything" || top(from) === top(to)) return false;
  return !rule.some((allowed) => to.startsWith(allowed.includes("/") ? allowed : `${allowed}/`));
}

/** Strongly connected components of more than one file (or a file importing itself), by Tarjan. */
function cycles(): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string) => {
    index.set(node, counter);
    low.set(node, counter++);
    stack.push(node);
    onStack.add(node);
    for (const next of runtimeGraph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node) ?? 0, low.get(next) ?? 0));
      } else if (onStack.has(next)) low.set(node, Math.min(low.get(node) ?? 0, index.get(next) ?? 0));
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string | undefined;
      do {
        member = stack.pop();
        if (member === undefined) break;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (runtimeGraph.get(node) ?? []).includes(node)) found.push(component.sort());
    }
  };
  for (const file of files) if (!index.has(file)) visit(file);
  return found;
}

/** A cycle written as a closed path through its component, starting at its first file. */
function describeCycle(component: string[]): string {
  const members = new Set(component);
  const start = component[0] ?? "";
  const path = [start];
  const seen = new Set([start]);
  let at = start;
  for (;;) {
    const targets = runtimeGraph.get(at) ?? [];
    const next = targets.find((n) => members.has(n) && !seen.has(n)) ?? targets.find((n) => n === start);
    if (next === undefined) break;
    path.push(next);
    if (next === start) break;
    seen.add(next);
    at = next;
  }
  return path.join(" -> ");
}

/** What offends, less what is allowed; and what is allowed but no longer offends. */
function check(offences: string[], allowed: readonly string[]) {
  return {
    unexpected: offences.filter((o) => !allowed.includes(o)),
    stale: allowed.filter((a) => !offences.includes(a)),
  };
}

describe("the folder rules (docs/development.md)", () => {
  it("reads the source tree", () => {
    // A walk that found nothing would pass every rule below.
    expect(files.length).toBeGreaterThan(200);
    for (const layer of ["functions", "durable-objects", "queues", "platform", "shared", "agent", "tools", "web"])
      expect(files.some((f) => top(f) === layer)).toBe(true);
    expect(graph.get("functions/index.ts")?.length).toBeGreaterThan(3);
  });

  it("has every import run down the layers", () => {
    const offences = [...graph].flatMap(([from, targets]) => targets.filter((to) => breaksRule(from, to)).map((to) => `${from} -> ${to}`));
    const { unexpected, stale } = check(offences, ALLOWED_IMPORTS);
    expect(unexpected, `imports against the folder rules (see MAY_IMPORT):\n${unexpected.join("\n")}`).toEqual([]);
    expect(stale, `allowed but no longer there: remove from ALLOWED_IMPORTS:\n${stale.join("\n")}`).toEqual([]);
  });

  it("has no import cycle between source files (at run time: type-only imports are erased)", () => {
    const offences = cycles().map(describeCycle);
    const { unexpected, stale } = check(offences, ALLOWED_CYCLES);
    expect(unexpected, `import cycles:\n${unexpected.join("\n")}`).toEqual([]);
    expect(stale, `allowed but no longer there: remove from ALLOWED_CYCLES:\n${stale.join("\n")}`).toEqual([]);
  });

  it(`has no hand-written source file over ${MAX_LINES} lines`, () => {
    const offences = files.filter((file) => !file.startsWith("test/") && (texts.get(file) ?? "").trimEnd().split("\n").length > MAX_LINES);
    const { unexpected, stale } = check(offences, ALLOWED_LONG_FILES);
    expect(unexpected, `files over ${MAX_LINES} lines: split them by concept:\n${unexpected.join("\n")}`).toEqual([]);
    expect(stale, `allowed but no longer over: remove from ALLOWED_LONG_FILES:\n${stale.join("\n")}`).toEqual([]);
  });

  it("catches what it is meant to catch", () => {
    // The checks themselves, on made-up edges: a wrong arrow, an allowed one, and a free folder.
    expect(breaksRule("durable-objects/x.ts", "queues/y.ts")).toBe(true);
    expect(breaksRule("shared/x.ts", "platform/y.ts")).toBe(true);
    expect(breaksRule("web/src/x.ts", "functions/y.ts")).toBe(true);
    expect(breaksRule("functions/x.ts", "durable-objects/y.ts")).toBe(false);
    expect(breaksRule("test/x.ts", "functions/y.ts")).toBe(false);
    expect(resolveImport("functions/index.ts", "../shared/log")).toBe("shared/log.ts");
    expect(resolveImport("tools/cli/main.ts", "../../shared/log.ts")).toBe("shared/log.ts");
    expect(resolveImport("functions/index.ts", "hono")).toBeUndefined();
    const sample = [
      'import { a } from "./a";',
      "import type {\n  B,\n  C,\n} from '../b.ts';",
      'export { d } from "./d";',
      'export * from "./e";',
      'import "./f";',
      'const g = await import("./g");',
      '/** import { h } from "./h"; */',
      '// import { i } from "./i";',
      'const j = "from ./j";',
    ].join("\n");
    expect(importsOf(sample).map((i) => i.specifier)).toEqual(["./a", "../b.ts", "./d", "./e", "./f", "./g"]);
    expect(importsOf(sample).map((i) => i.typeOnly)).toEqual([false, true, false, false, false, false]);
    expect(importsOf('import { type A, b } from "./a";\nimport { type C } from "./c";').map((i) => i.typeOnly)).toEqual([false, true]);
    expect(breaksRule("queues/x.ts", "durable-objects/stubs.ts")).toBe(false);
    expect(breaksRule("queues/x.ts", "durable-objects/live-hub.ts")).toBe(true);
  });
});
