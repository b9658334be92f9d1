/**
 * Typed events: listeners by event type, each told only the events of its type.
 *
 * @module
 */

/**
 * An event with a `type` naming it: what {@linkcode EventMap} sorts events by.
 *
 * @example
 * ```ts
 * import type { Typed, WorkerEvent } from "@workqueue/rabbitmq";
 *
 * function name(event: Typed): string {
 *   return event.type;
 * }
 * const event: WorkerEvent = { type: "consuming", queue: "task_queue" };
 * console.log(name(event)); // "consuming"
 * ```
 */
export interface Typed {
  /** The event's name. */
  type: string;
}

/**
 * The events of the union `E`, by their `type`: the event a listener of one type is given.
 *
 * @example The event a worker's "done" listener gets
 * ```ts
 * import type { EventMap, WorkerEvent } from "@workqueue/rabbitmq";
 *
 * type Done = EventMap<WorkerEvent>["done"];
 * const done: Done = { type: "done", id: "42", attempt: 1, durationMs: 12 };
 * console.log(done.durationMs);
 * ```
 */
export type EventMap<E extends Typed> = { [K in E["type"]]: Extract<E, { type: K }> };

/** Listeners of events of the union `E`, by type, and of all of them (`"*"`). */
export class Emitter<E extends Typed> {
  #listeners = new Map<string, Set<(event: E) => void>>();

  /**
   * Calls `listener` for every event of `type` (every event for `"*"`); returns a function that
   * removes it.
   */
  on<K extends E["type"]>(type: K, listener: (event: EventMap<E>[K]) => void): () => void;
  on(type: "*", listener: (event: E) => void): () => void;
  on(type: string, listener: (event: never) => void): () => void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, set = new Set());
    const fn = listener as (event: E) => void;
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Tells the listeners of `event.type` and of `"*"`; a listener that throws does not stop the others. */
  emit(event: E): void {
    // Twice a task at least, on the worker's path: no arrays or iterators made for it.
    const typed = this.#listeners.get(event.type);
    if (typed !== undefined) tell(typed, event);
    const all = this.#listeners.get("*");
    if (all !== undefined) tell(all, event);
  }
}

function tell<E>(listeners: Set<(event: E) => void>, event: E): void {
  for (const listener of listeners) {
    try {
      listener(event);
    } catch (error) {
      // A broken listener must not break the ack path; it is a bug, so it is reported.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}
