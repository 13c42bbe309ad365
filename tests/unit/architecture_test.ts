import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

// Who may import whom (DESIGN.md): lib/ never imports plugins/, mod.ts or the CLI; plugins (shipped
// ones and the user-style fixtures) import the contract types (type-only), Node's built-in modules
// (`node:crypto`...), and the files of their own folder (`plugins/<kind>/`, or `fixtures/plugins/`
// for the fixtures), nothing else.

const ROOT = resolve(dirname(fromFileUrl(import.meta.url)), "../..");

interface ImportRef {
  /** The module specifier as written. */
  readonly specifier: string;
  /** `import type ...` or `export type ... from`. */
  readonly typeOnly: boolean;
  /** `import(...)`; the specifier is "" when it is not a string literal. */
  readonly dynamic: boolean;
  /** 1-based line of the statement. */
  readonly line: number;
}

/**
 * Blanks out comments and the contents of string and template literals (keeping quotes,
 * line breaks and offsets), so that imports shown in JSDoc examples or held in strings are
 * not mistaken for real ones. Offsets are unchanged, so a specifier is read back from the
 * original source at the position of its (blanked) string.
 */
function codeOnly(source: string): string {
  const out = source.split("");
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== "\n") out[k] = " ";
  };
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      const end = source.indexOf("\n", i);
      const stop = end < 0 ? source.length : end;
      blank(i, stop);
      i = stop;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? source.length : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === "`" || c === '"' || c === "'") {
      let j = i + 1;
      while (j < source.length && source[j] !== c && (c === "`" || source[j] !== "\n")) {
        j += source[j] === "\\" ? 2 : 1;
      }
      blank(i + 1, Math.min(j, source.length));
      i = j + 1;
    } else {
      i++;
    }
  }
  return out.join("");
}

/** Lists the imports and re-exports of a TypeScript source file. */
function importsOf(source: string): ImportRef[] {
  const code = codeOnly(source);
  const lineAt = (offset: number) => code.slice(0, offset).split("\n").length;
  const text = (m: RegExpExecArray | RegExpMatchArray, group: number) => {
    const at = (m as RegExpMatchArray & { indices: [number, number][] }).indices[group];
    return at === undefined ? undefined : source.slice(at[0], at[1]);
  };
  const refs: ImportRef[] = [];
  const fromClause =
    /(?<![\w$.])(import|export)(\s+type)?\s+(?:[\w$*{}\s,]+?\s+)?from\s*(["'])([^"'\n]*)\3/dg;
  for (const m of code.matchAll(fromClause)) {
    refs.push({
      specifier: text(m, 4)!,
      typeOnly: m[2] !== undefined,
      dynamic: false,
      line: lineAt(m.index!),
    });
  }
  const bare = /(?<![\w$.])import\s*(["'])([^"'\n]*)\1/dg;
  for (const m of code.matchAll(bare)) {
    refs.push({ specifier: text(m, 2)!, typeOnly: false, dynamic: false, line: lineAt(m.index!) });
  }
  const dynamic = /(?<![\w$.])import\s*\(\s*(?:(["'])([^"'\n]*)\1)?/dg;
  for (const m of code.matchAll(dynamic)) {
    refs.push({ specifier: text(m, 2) ?? "", typeOnly: false, dynamic: true, line: lineAt(m.index!) });
  }
  return refs.sort((a, b) => a.line - b.line);
}

async function tsFilesUnder(dir: string): Promise<string[]> {
  const files: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return files;
    throw error;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) files.push(...await tsFilesUnder(path));
    else if (entry.isFile && /\.(ts|tsx|mts|js|mjs)$/.test(entry.name)) files.push(path);
  }
  return files.sort();
}

/** The repository-relative path an import resolves to, or null for a bare or URL specifier. */
function target(file: string, specifier: string): string | null {
  if (!specifier.startsWith(".") && !specifier.startsWith("/")) {
    if (specifier.startsWith("file:")) return relative(ROOT, fromFileUrl(specifier));
    return null;
  }
  return relative(ROOT, resolve(dirname(file), specifier)).split("\\").join("/");
}

/** Violations of the rule for lib/: no plugins/, no mod.ts, no CLI. */
function libViolations(file: string, source: string): string[] {
  const out: string[] = [];
  for (const ref of importsOf(source)) {
    const where = `${relative(ROOT, file)}:${ref.line}`;
    if (ref.dynamic && ref.specifier === "") {
      out.push(`${where}: dynamic import() of a computed specifier`);
      continue;
    }
    const to = target(file, ref.specifier);
    if (to === null) continue;
    if (to.startsWith("plugins/") || to === "plugins") {
      out.push(`${where}: imports ${ref.specifier} (a plugin)`);
    } else if (to === "mod.ts") out.push(`${where}: imports mod.ts (the preset)`);
    else if (to === "cli.ts" || to.startsWith("cli/")) {
      out.push(`${where}: imports ${ref.specifier} (the CLI)`);
    } else if (!to.startsWith("lib/")) out.push(`${where}: imports ${ref.specifier}, outside lib/`);
  }
  return out;
}

/**
 * The folder a plugin file may import from: `plugins/<kind>/` for shipped plugins,
 * `fixtures/plugins/` for the user-style ones; none for a file outside a kind folder.
 */
function homeOf(file: string): string | null {
  const parts = relative(ROOT, file).split("\\").join("/").split("/");
  if (parts[0] === "plugins" && parts.length > 2) return `plugins/${parts[1]}/`;
  if (parts[0] === "fixtures" && parts[1] === "plugins" && parts.length > 2) return "fixtures/plugins/";
  return null;
}

/**
 * Violations of the rule for plugins: `import type ... from ".../lib/types.ts"`, `node:`
 * built-ins, and files of the plugin's own folder; no dynamic imports.
 */
function pluginViolations(file: string, source: string): string[] {
  const out: string[] = [];
  const home = homeOf(file);
  for (const ref of importsOf(source)) {
    const where = `${relative(ROOT, file)}:${ref.line}`;
    const to = ref.specifier === "" ? null : target(file, ref.specifier);
    if (ref.dynamic) out.push(`${where}: dynamic import(${ref.specifier})`);
    else if (ref.specifier.startsWith("node:")) continue;
    else if (to === "lib/types.ts") {
      if (!ref.typeOnly) out.push(`${where}: imports lib/types.ts without "import type"`);
    } else if (to === null || home === null || !to.startsWith(home)) {
      const allowed = `lib/types.ts (types), node: built-ins${home ? ` and ${home}` : ""}`;
      out.push(`${where}: imports ${ref.specifier || "?"}; only ${allowed} are allowed`);
    }
  }
  return out;
}

async function violations(
  dirs: string[],
  rule: (file: string, source: string) => string[],
): Promise<{ files: number; problems: string[] }> {
  const problems: string[] = [];
  let files = 0;
  for (const dir of dirs) {
    for (const file of await tsFilesUnder(join(ROOT, dir))) {
      files++;
      problems.push(...rule(file, await Deno.readTextFile(file)));
    }
  }
  return { files, problems };
}

// ---------------------------------------------------------------------------------------------
// The rules, applied to the repository

Deno.test("lib/ never imports plugins/, mod.ts or the CLI", async () => {
  const { files, problems } = await violations(["lib"], libViolations);
  assert.ok(files >= 10, `only ${files} files found under lib/`);
  assert.deepEqual(problems, []);
});

Deno.test("plugins/ and fixtures/plugins/ import only lib/types.ts types, node: built-ins and their own folder", async () => {
  const { files, problems } = await violations(["plugins", "fixtures/plugins"], pluginViolations);
  assert.ok(files >= 3, `only ${files} plugin files found`);
  assert.deepEqual(problems, []);
});

Deno.test("lib/types.ts has no imports at all (plugins may depend on it alone)", async () => {
  const file = join(ROOT, "lib/types.ts");
  assert.deepEqual(importsOf(await Deno.readTextFile(file)), []);
});

// ---------------------------------------------------------------------------------------------
// The import scanner itself, so the rules above can fail

const FAKE_LIB = join(ROOT, "lib/peer/fake.ts");
const FAKE_PLUGIN = join(ROOT, "plugins/selection/fake.ts");

Deno.test("importsOf() finds static, re-export, side-effect and dynamic imports", () => {
  const source = [
    `import { a, b as c } from "./a.ts";`,
    `import type { T } from '../types.ts';`,
    `import * as ns from "./ns.ts";`,
    `import def, { x } from "./def.ts";`,
    `export * from "./star.ts";`,
    `export { y } from "./y.ts";`,
    `export type { Z } from "./z.ts";`,
    `import "./side.ts";`,
    `const m = await import("./dyn.ts");`,
    `const n = await import(name);`,
    `import {`,
    `  multi,`,
    `  line,`,
    `} from "./multi.ts";`,
  ].join("\n");
  assert.deepEqual(importsOf(source).map((r) => [r.specifier, r.typeOnly, r.dynamic, r.line]), [
    ["./a.ts", false, false, 1],
    ["../types.ts", true, false, 2],
    ["./ns.ts", false, false, 3],
    ["./def.ts", false, false, 4],
    ["./star.ts", false, false, 5],
    ["./y.ts", false, false, 6],
    ["./z.ts", true, false, 7],
    ["./side.ts", false, false, 8],
    ["./dyn.ts", false, true, 9],
    ["", false, true, 10],
    ["./multi.ts", false, false, 11],
  ]);
});

Deno.test("importsOf() ignores imports inside comments, JSDoc examples and strings", () => {
  const source = [
    "/**",
    " * ```ts",
    ' * import { sequential } from "../plugins/selection/sequential.ts";',
    " * ```",
    " */",
    '// import { x } from "../plugins/x.ts";',
    "const s = \"import { y } from '../plugins/y.ts'\";",
    'const t = `import { z } from "../plugins/z.ts"`;',
    'const url = "http://example.invalid/"; // a comment with import("x")',
  ].join("\n");
  assert.deepEqual(importsOf(source), []);
});

Deno.test("the lib/ rule rejects plugins, mod.ts, the CLI and computed imports", () => {
  const bad = [
    `import { rarestFirst } from "../../plugins/selection/rarest_first.ts";`,
    `import { Session } from "../../mod.ts";`,
    `import { main } from "../../cli.ts";`,
    `import { run } from "../../cli/download.ts";`,
    `const p = await import("../../plugins/selection/sequential.ts");`,
    `const q = await import(somewhere);`,
  ].join("\n");
  assert.equal(libViolations(FAKE_LIB, bad).length, 6);
  const good = [
    `import { Bitfield } from "../bitfield.ts";`,
    `import type { PieceSelector } from "../types.ts";`,
    `import { createHash } from "node:crypto";`,
  ].join("\n");
  assert.deepEqual(libViolations(FAKE_LIB, good), []);
});

Deno.test("the plugin rule accepts type-only lib/types.ts, node: built-ins and the plugin's own folder", () => {
  const good = [
    `import type { PieceSelector } from "../../lib/types.ts";`,
    `export type { PeerView } from "../../lib/types.ts";`,
    `import { createHash } from "node:crypto";`,
    `import { sequential } from "./sequential.ts";`,
    `import { helper } from "./util/helper.ts";`,
    `export { rarestFirst } from "./rarest_first.ts";`,
  ];
  for (const line of good) assert.deepEqual(pluginViolations(FAKE_PLUGIN, line), [], line);
  const bad = [
    `import { PieceSelector } from "../../lib/types.ts";`, // not type-only
    `import { type PeerView } from "../../lib/types.ts";`, // inline type modifier only
    `import type { Bitfield } from "../../lib/bitfield.ts";`,
    `import { Rc4 } from "../encryption/rc4.ts";`, // another kind's folder
    `import { Session } from "../../mod.ts";`,
    `import { x } from "npm:left-pad";`,
    `import { y } from "https://example.invalid/y.ts";`,
    `import "../../lib/types.ts";`,
    `const x = await import("../../lib/types.ts");`,
    `const z = await import("./sequential.ts");`,
  ];
  for (const line of bad) assert.equal(pluginViolations(FAKE_PLUGIN, line).length, 1, line);
  // A file outside a kind folder has no folder of its own to import from.
  const loose = join(ROOT, "plugins/loose.ts");
  assert.equal(pluginViolations(loose, `import { sequential } from "./selection/sequential.ts";`).length, 1);
  assert.deepEqual(pluginViolations(loose, `import type { Encryption } from "../lib/types.ts";`), []);
});

Deno.test("a user-style fixture plugin may import its own folder but not plugins/", () => {
  const fixture = join(ROOT, "fixtures/plugins/fake.ts");
  assert.deepEqual(pluginViolations(fixture, `import { lowestFirst } from "./lowest_first.ts";`), []);
  assert.deepEqual(pluginViolations(fixture, `import { createHash } from "node:crypto";`), []);
  assert.equal(pluginViolations(fixture, `import { mse } from "../../plugins/encryption/mse.ts";`).length, 1);
  assert.equal(pluginViolations(fixture, `import { x } from "../valid/x.ts";`).length, 1);
});

// The only files that open sockets themselves. Peer connections go through a Transport
// (lib/types.ts), so the core runs over any transport (the in-memory one in tests/sim/, later
// uTP); a new caller of these APIs belongs in a transport or in this list, with its reason.
const SOCKET_OPENERS: Readonly<Record<string, { calls: readonly string[]; why: string }>> = {
  "lib/net/tcp_transport.ts": {
    calls: ["connect", "listen"],
    why: "the TCP transport: every peer connection",
  },
  "lib/http/server.ts": {
    calls: ["listen"],
    why: "the HTTP server (tracker endpoint, later RPC) is not a peer",
  },
  "lib/tracker/server.ts": { calls: ["listenDatagram"], why: "the tracker's UDP endpoint (BEP 15 server)" },
  "lib/tracker/udp_tracker.ts": { calls: ["listenDatagram"], why: "UDP tracker client socket (BEP 15)" },
  "lib/dht/rpc.ts": { calls: ["listenDatagram"], why: "the DHT's UDP socket (BEP 5)" },
  "lib/discovery/lsd.ts": { calls: ["listenDatagram"], why: "local service discovery multicast (BEP 14)" },
};

/** `Deno.<api>` socket calls in code (comments and strings blanked), as "api" per line. */
function socketCalls(source: string): { api: string; line: number }[] {
  const code = codeOnly(source);
  const out: { api: string; line: number }[] = [];
  const pattern =
    /(?<![\w$])Deno\s*\.\s*(connect|connectTls|startTls|listen|listenTls|listenDatagram)(?![\w$])/g;
  for (const m of code.matchAll(pattern)) {
    out.push({ api: m[1]!, line: code.slice(0, m.index!).split("\n").length });
  }
  return out;
}

Deno.test("only the listed files call Deno.connect, Deno.listen and Deno.listenDatagram", async () => {
  const files = [
    ...await tsFilesUnder(join(ROOT, "lib")),
    ...await tsFilesUnder(join(ROOT, "plugins")),
    ...await tsFilesUnder(join(ROOT, "cli")),
    join(ROOT, "cli.ts"),
    join(ROOT, "mod.ts"),
  ];
  const violations: string[] = [];
  const seen = new Set<string>();
  for (const file of files) {
    const path = relative(ROOT, file).split("\\").join("/");
    for (const call of socketCalls(await Deno.readTextFile(file))) {
      const allowed = SOCKET_OPENERS[path];
      seen.add(path);
      if (!allowed?.calls.includes(call.api)) violations.push(`${path}:${call.line}: Deno.${call.api}`);
    }
  }
  assert.deepEqual(violations, []);
  // A stale entry would let a file start opening sockets again unnoticed.
  assert.deepEqual(Object.keys(SOCKET_OPENERS).filter((path) => !seen.has(path)), []);
});

Deno.test("socketCalls() finds Deno socket calls in code, not in comments or strings", () => {
  const source = [
    "// Deno.connect in a comment",
    'const s = "Deno.listen in a string";',
    "const c = await Deno.connect({ port: 1 });",
    "const d = Deno . listenDatagram({ transport: 'udp', port: 0 });",
    "const n = Deno.connectedness;",
  ].join("\n");
  assert.deepEqual(socketCalls(source), [{ api: "connect", line: 3 }, { api: "listenDatagram", line: 4 }]);
});

// ---------------------------------------------------------------------------------------------
// No import cycles

/**
 * The import cycles among `files` (each a strongly connected component of more than one file,
 * or a file importing itself), as sorted lists of repository-relative paths. `typeOnly`
 * imports count only when `withTypes` is set: a type-only cycle costs nothing at run time but
 * still ties two modules' designs together.
 */
function importCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  // Tarjan's algorithm, iterative (a deep import chain must not overflow the stack).
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  for (const root of [...graph.keys()].sort()) {
    if (index.has(root)) continue;
    const work: { node: string; next: number }[] = [{ node: root, next: 0 }];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const edges = graph.get(frame.node) ?? [];
      if (frame.next < edges.length) {
        const to = edges[frame.next++]!;
        if (!graph.has(to)) continue;
        if (!index.has(to)) {
          index.set(to, counter);
          low.set(to, counter++);
          stack.push(to);
          onStack.add(to);
          work.push({ node: to, next: 0 });
        } else if (onStack.has(to)) low.set(frame.node, Math.min(low.get(frame.node)!, index.get(to)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        const selfLoop = component.length === 1 && edges.includes(frame.node);
        if (component.length > 1 || selfLoop) cycles.push(component.sort());
      }
    }
  }
  return cycles.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/** The import graph of the product's code (lib/, plugins/, cli/, cli.ts, mod.ts). */
async function importGraph(options: { withTypes: boolean }): Promise<Map<string, string[]>> {
  const files = [
    ...await tsFilesUnder(join(ROOT, "lib")),
    ...await tsFilesUnder(join(ROOT, "plugins")),
    ...await tsFilesUnder(join(ROOT, "cli")),
    join(ROOT, "cli.ts"),
    join(ROOT, "mod.ts"),
  ];
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const edges = importsOf(await Deno.readTextFile(file))
      .filter((ref) => options.withTypes || !ref.typeOnly)
      .map((ref) => target(file, ref.specifier))
      .filter((to): to is string => to !== null);
    graph.set(relative(ROOT, file).split("\\").join("/"), [...new Set(edges)]);
  }
  return graph;
}

Deno.test("no import cycles in lib/, plugins/ and the CLI, type-only imports included", async () => {
  const graph = await importGraph({ withTypes: true });
  assert.ok(graph.size >= 50, `only ${graph.size} files found`);
  assert.deepEqual(importCycles(graph), []);
});

Deno.test("importCycles() finds cycles and self-imports, not diamonds", () => {
  const graph = new Map<string, string[]>([
    ["a", ["b", "c"]],
    ["b", ["d"]],
    ["c", ["d"]],
    ["d", []],
    ["e", ["f"]],
    ["f", ["g"]],
    ["g", ["e", "outside"]],
    ["h", ["h"]],
  ]);
  assert.deepEqual(importCycles(graph), [["e", "f", "g"], ["h"]]);
  graph.set("d", ["a"]);
  assert.deepEqual(importCycles(graph), [["a", "b", "c", "d"], ["e", "f", "g"], ["h"]]);
});

// ---------------------------------------------------------------------------------------------
// The CLI is a user of the library

/**
 * Violations of the rule for the CLI: only mod.ts, the subpath exports, cli/, deno.json (the
 * version) and node: built-ins; a computed `import()` only in cli/user_module.ts, which loads the
 * user's own plugin modules.
 */
function cliViolations(file: string, source: string, subpaths: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const path = relative(ROOT, file).split("\\").join("/");
  for (const ref of importsOf(source)) {
    const where = `${relative(ROOT, file)}:${ref.line}`;
    if (ref.specifier.startsWith("node:")) continue;
    if (ref.dynamic && ref.specifier === "" && path === "cli/user_module.ts") continue;
    const to = ref.specifier === "" ? null : target(file, ref.specifier);
    if (to === "deno.json") continue;
    if (to === null) out.push(`${where}: imports ${ref.specifier || "a computed specifier"}`);
    else if (to !== "mod.ts" && to !== "cli.ts" && !to.startsWith("cli/") && !subpaths.has(to)) {
      out.push(`${where}: imports ${ref.specifier}, not mod.ts or a subpath export`);
    }
  }
  return out;
}

Deno.test("the CLI imports only mod.ts and the subpath exports of deno.json", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))) as {
    exports: Record<string, string>;
  };
  const subpaths = new Set(Object.values(config.exports).map((path) => path.replace(/^\.\//, "")));
  const files = [...await tsFilesUnder(join(ROOT, "cli")), join(ROOT, "cli.ts")];
  const problems: string[] = [];
  for (const file of files) problems.push(...cliViolations(file, await Deno.readTextFile(file), subpaths));
  assert.ok(files.length >= 10, `only ${files.length} CLI files found`);
  assert.deepEqual(problems, []);
  const fake = join(ROOT, "cli/fake.ts");
  assert.equal(cliViolations(fake, `import { Swarm } from "../lib/swarm/swarm.ts";`, subpaths).length, 1);
  assert.deepEqual(cliViolations(fake, `import { DhtNode } from "../lib/dht/mod.ts";`, subpaths), []);
  assert.equal(cliViolations(fake, "const m = await import(userPath);", subpaths).length, 1);
});
