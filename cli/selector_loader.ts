/**
 * `--selector`: a built-in piece selector by name, or a user's module that exports one.
 *
 * @module
 */

import { type PieceSelector, PluginError, rarestFirst, sequential } from "../mod.ts";
import { UsageError } from "./common.ts";
import { importUserModule } from "./user_module.ts";

/**
 * Finds the selector a `--selector` value names: a built-in name or a module path.
 *
 * @example
 * ```ts ignore
 * const selector = await loadSelector("./fixtures/plugins/lowest_first.ts", Deno.cwd());
 * ```
 *
 * @param spec "rarest", "sequential", or a path to a module.
 * @param cwd Folder relative paths are resolved against.
 * @returns The selector.
 * @throws {PluginError} when the module cannot be loaded or exports no selector.
 */
export async function loadSelector(spec: string, cwd: string): Promise<PieceSelector> {
  if (spec === "rarest" || spec === "rarest-first") return rarestFirst();
  if (spec === "sequential") return sequential();
  if (!spec.includes("/") && !spec.includes("\\") && !spec.endsWith(".ts") && !spec.endsWith(".js")) {
    throw new UsageError(
      "download",
      `Unknown --selector: ${spec} (rarest, sequential, or a path like ./mine.ts)`,
    );
  }
  const module = await importUserModule(spec, cwd);
  const candidates = [module.selector, module.default, ...Object.values(module)];
  for (const candidate of candidates) {
    if (isSelector(candidate)) return candidate;
  }
  for (const candidate of candidates) {
    if (typeof candidate === "function" && candidate.length === 0) {
      let made: unknown;
      try {
        made = (candidate as () => unknown)();
      } catch (error) {
        throw new PluginError(spec, `its factory threw: ${(error as Error).message}`, { cause: error });
      }
      if (isSelector(made)) return made;
    }
  }
  throw new PluginError(
    spec,
    "the module exports no PieceSelector (an object with a name and a select() method)",
  );
}

function isSelector(value: unknown): value is PieceSelector {
  return typeof value === "object" && value !== null && typeof (value as PieceSelector).name === "string" &&
    typeof (value as PieceSelector).select === "function";
}
