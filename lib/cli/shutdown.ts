/**
 * Graceful shutdown on SIGINT and SIGTERM: the first signal asks the work to drain, a second
 * one, or the drain taking too long, forces the exit.
 *
 * @module
 */

/** Options for {@linkcode onShutdownSignal}. */
export interface ShutdownOptions {
  /** Called on the first signal: stop taking work and drain. */
  onFirst: (signal: Deno.Signal) => void;
  /**
   * Called on a second signal, with the reason and that signal, or when `timeout` passes after
   * the first, with the reason and no signal.
   */
  onForced: (reason: string, signal: Deno.Signal | undefined) => void;
  /**
   * Milliseconds the drain may take after the first signal.
   * @default {30000}
   */
  timeout?: number;
  /**
   * The signals handled. Add SIGHUP when the process has children in process groups of their
   * own: they would not hear a closed terminal, so this process must stop them.
   * @default {["SIGINT", "SIGTERM"]}
   */
  signals?: readonly Deno.Signal[];
}

const DEFAULT_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];
const DUPLICATE_WINDOW_MS = 300;

/**
 * Installs one handler for SIGINT and SIGTERM (or `signals`). Disposing it removes the handler
 * and the timer, so the process can end by itself.
 *
 * @throws {RangeError} when `signals` is empty.
 */
export function onShutdownSignal(options: ShutdownOptions): Disposable {
  const { onFirst, onForced, timeout = 30_000, signals = DEFAULT_SIGNALS } = options;
  if (signals.length === 0) {
    throw new RangeError(`Invalid signals "${signals.join(",")}": expected at least one`);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  let received = 0;
  let firstAt = 0;
  const handler = (signal: Deno.Signal) => {
    // `deno task` forwards the terminal's SIGINT to a child that the terminal signalled itself,
    // so one Ctrl+C can arrive twice within milliseconds: count that as one.
    if (received === 1 && performance.now() - firstAt < DUPLICATE_WINDOW_MS) return;
    received++;
    if (received === 1) firstAt = performance.now();
    if (received > 1) {
      onForced(`Second ${signal}`, signal);
      return;
    }
    timer = setTimeout(
      () => onForced(`Shutdown took longer than ${timeout} ms`, undefined),
      timeout,
    );
    onFirst(signal);
  };
  const listeners = [...new Set(signals)].map((signal) => {
    const listener = () => handler(signal);
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  return {
    [Symbol.dispose]() {
      clearTimeout(timer);
      for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    },
  };
}
