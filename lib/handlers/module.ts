/**
 * A handler written in TypeScript or JavaScript: a module whose default export is the
 * {@linkcode TaskHandler}, loaded into the worker's own process.
 *
 * @module
 */

import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { TaskHandler } from "../consume/task.ts";

/**
 * Imports the module at `path` (relative to the working directory, or a URL) and returns its
 * default export.
 *
 * @throws {TypeError} when the module cannot be loaded or its default export is not a function.
 */
export async function loadHandler(path: string): Promise<TaskHandler> {
  const url = /^[a-z][a-z0-9+.-]*:/i.test(path) && !/^[a-z]:[\\/]/i.test(path)
    ? path
    : pathToFileURL(resolve(path)).href;
  let module: { default?: unknown };
  try {
    module = await import(url);
  } catch (error) {
    const why = error instanceof Error ? error.message.split("\n", 1)[0] : String(error);
    throw new TypeError(`Cannot load handler module "${path}": ${why}`, { cause: error });
  }
  const handler = module.default;
  if (typeof handler !== "function") {
    throw new TypeError(
      `Cannot use handler module "${path}": its default export is ${
        handler === undefined ? "missing" : `a ${typeof handler}, not a function`
      } (export default async function (task, signal) { ... })`,
    );
  }
  return handler as TaskHandler;
}
