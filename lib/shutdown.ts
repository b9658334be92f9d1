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
  /** Called on a second signal or when `timeout` passes after the first, with the reason. */
  onForced: (reason: string) => void;
  /**
   * Milliseconds the drain may take after the first signal.
   * @default {30000}
   */
  timeout?: number;
}

const SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];
const DUPLICATE_WINDOW_MS = 300;

/**
 * Installs one handler for SIGINT and SIGTERM. Disposing it removes the handler and the timer,
 * so the process can end by itself.
 */
export function onShutdownSignal(options: ShutdownOptions): Disposable {
  const { onFirst, onForced, timeout = 30_000 } = options;
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
      onForced(`Second ${signal}`);
      return;
    }
    timer = setTimeout(() => onForced(`Shutdown took longer than ${timeout} ms`), timeout);
    onFirst(signal);
  };
  const listeners = SIGNALS.map((signal) => {
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
