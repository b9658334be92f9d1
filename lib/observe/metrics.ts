/**
 * Prometheus metrics and a health check for a worker, served over HTTP. The text format is small
 * enough to write by hand; a metrics library would be the project's second dependency for a
 * handful of lines.
 *
 * @module
 */

import type { WorkerEvent } from "../consume/worker.ts";

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800];
const OUTCOMES = ["succeeded", "failed", "retried", "dead_lettered"] as const;

/** A worker's counters, fed with its events. */
export class WorkerMetrics {
  readonly queue: string;
  #outcomes = new Map<string, number>(OUTCOMES.map((outcome) => [outcome, 0]));
  #inFlight = 0;
  #connected = false;
  #consuming = false;
  #buckets = BUCKETS.map(() => 0);
  #count = 0;
  #sum = 0;

  constructor(queue: string) {
    this.queue = queue;
  }

  /** Whether the worker is connected and consuming: what `/healthz` reports. */
  get healthy(): boolean {
    return this.#connected && this.#consuming;
  }

  /** Updates the counters from one worker event. */
  record(event: WorkerEvent): void {
    switch (event.type) {
      case "consuming":
        this.#connected = true;
        this.#consuming = true;
        break;
      case "connection_lost":
        this.#connected = false;
        this.#consuming = false;
        break;
      case "channel_lost":
      case "consumer_cancelled":
        this.#consuming = false;
        break;
      case "received":
        this.#inFlight++;
        break;
      case "done":
        this.#finish("succeeded", event.durationMs);
        break;
      case "retried":
        this.#finish("retried", event.durationMs, true);
        break;
      case "dead_lettered":
        this.#finish("dead_lettered", event.durationMs, true);
        break;
    }
  }

  /** The worker has stopped consuming for good. */
  stopped(): void {
    this.#consuming = false;
  }

  #finish(outcome: string | undefined, durationMs: number, failed = false): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    if (outcome) this.#add(outcome);
    if (failed) this.#add("failed");
    const seconds = durationMs / 1000;
    this.#count++;
    this.#sum += seconds;
    BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) this.#buckets[i]!++;
    });
  }

  #add(outcome: string): void {
    this.#outcomes.set(outcome, (this.#outcomes.get(outcome) ?? 0) + 1);
  }

  /** The Prometheus text exposition of the counters. */
  render(): string {
    const queue = `queue="${this.queue.replace(/["\\\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`)}"`;
    const lines = [
      "# HELP workqueue_tasks_total Tries of tasks by outcome.",
      "# TYPE workqueue_tasks_total counter",
      ...[...this.#outcomes].map(([outcome, n]) =>
        `workqueue_tasks_total{${queue},outcome="${outcome}"} ${n}`
      ),
      "# HELP workqueue_tasks_in_flight Tasks being worked on now.",
      "# TYPE workqueue_tasks_in_flight gauge",
      `workqueue_tasks_in_flight{${queue}} ${this.#inFlight}`,
      "# HELP workqueue_task_duration_seconds How long tries took.",
      "# TYPE workqueue_task_duration_seconds histogram",
      ...BUCKETS.map((bound, i) =>
        `workqueue_task_duration_seconds_bucket{${queue},le="${bound}"} ${this.#buckets[i]}`
      ),
      `workqueue_task_duration_seconds_bucket{${queue},le="+Inf"} ${this.#count}`,
      `workqueue_task_duration_seconds_sum{${queue}} ${this.#sum}`,
      `workqueue_task_duration_seconds_count{${queue}} ${this.#count}`,
      "# HELP workqueue_connected 1 while connected to the broker and consuming.",
      "# TYPE workqueue_connected gauge",
      `workqueue_connected{${queue}} ${this.healthy ? 1 : 0}`,
    ];
    return lines.join("\n") + "\n";
  }
}

/** Options for {@linkcode serveMetrics}. */
export interface ServeMetricsOptions {
  /**
   * The address to listen on.
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * Stops the server.
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Called once the server listens, with its port.
   * @default {() => {}}
   */
  onListen?: (port: number) => void;
}

/** The metrics server could not listen: its port is in use, say. */
export class MetricsListenError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "MetricsListenError";
  }
}

/**
 * Serves `/metrics` (Prometheus text) and `/healthz` (200 when healthy, 503 otherwise).
 *
 * @throws {MetricsListenError} when it cannot listen on `port`: `Cannot serve metrics on port
 * 9090: address in use`.
 */
export function serveMetrics(
  port: number,
  metrics: WorkerMetrics,
  options: ServeMetricsOptions = {},
): Deno.HttpServer {
  const { hostname = "0.0.0.0", signal, onListen = () => {} } = options;
  try {
    return listen(port, hostname, signal, onListen, metrics);
  } catch (error) {
    const why = error instanceof Deno.errors.AddrInUse
      ? "address in use"
      : error instanceof Deno.errors.AddrNotAvailable
      ? `address "${hostname}" not available`
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied (a port below 1024 needs privileges)"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new MetricsListenError(`Cannot serve metrics on port ${port}: ${why}`, { cause: error });
  }
}

function listen(
  port: number,
  hostname: string,
  signal: AbortSignal | undefined,
  onListen: (port: number) => void,
  metrics: WorkerMetrics,
): Deno.HttpServer {
  return Deno.serve({
    port,
    hostname,
    ...(signal ? { signal } : {}),
    onListen: ({ port }) => onListen(port),
  }, (request) => {
    const { pathname } = new URL(request.url);
    if (pathname === "/metrics") {
      return new Response(metrics.render(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    if (pathname === "/healthz") {
      return metrics.healthy
        ? new Response("ok\n")
        : new Response("not consuming\n", { status: 503 });
    }
    return new Response("not found\n", { status: 404 });
  });
}
