/**
 * Loads a user's own module (`--selector ./mine.ts`, `--log ./my_sink.ts`), with an error that
 * says what to do when it cannot load, also in a compiled binary (which holds only the modules
 * built into it).
 *
 * @module
 */

import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { PluginError } from "../mod.ts";

/** Options of {@linkcode importUserModule}. */
export interface ImportUserModuleOptions {
  /** Whether this is a `deno compile`d binary. @default {Deno.build.standalone} */
  standalone?: boolean;
}

/**
 * Imports the module a path on the command line names.
 *
 * @example
 * ```ts ignore
 * import { importUserModule } from "./user_module.ts";
 * const module = await importUserModule("./fixtures/plugins/lowest_first.ts", Deno.cwd());
 * ```
 *
 * @param spec The path as given (named in errors).
 * @param cwd Folder a relative path is resolved against.
 * @param options Whether this is a compiled binary.
 * @returns The module's exports.
 * @throws {PluginError} naming the module when it cannot be loaded.
 */
export async function importUserModule(
  spec: string,
  cwd: string,
  options: ImportUserModuleOptions = {},
): Promise<Record<string, unknown>> {
  const url = pathToFileURL(resolve(cwd, spec)).href;
  try {
    return await import(url);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    const standalone = options.standalone ?? Deno.build.standalone;
    const hint = standalone
      ? " (a compiled shoal binary loads only the modules built into it: build it with " +
        `'deno compile --include ${spec}', or run shoal with Deno, as 'deno task install' installs it)`
      : "";
    throw new PluginError(spec, `cannot load the module: ${why}${hint}`, { cause: error });
  }
}
