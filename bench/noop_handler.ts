/**
 * A handler that does nothing: its default export returns at once. The bench drains a queue with
 * `worker.ts --handler bench/noop_handler.ts` to measure what the worker itself costs per task.
 *
 * @module
 */

/** Does nothing, at once: the task is done. */
export default function noop(): void {}
