/**
 * What a measurement is to the bench: the rows it fills, how it measures them (for the results
 * file), and the run itself.
 *
 * @module
 */

import type { Broker } from "./_broker.ts";
import type { Row } from "./_report.ts";

/** The sizes of a run. */
export interface BenchConfig {
  /** Tasks sent by the bulk senders and drained by the consumers. */
  tasks: number;
  /**
   * Tasks drained by `worker.ts --exec true`: a process per task is far slower, and this many
   * take a few seconds.
   */
  execTasks: number;
  /** Unconfirmed tasks at most, for both bulk senders. */
  window: number;
  /**
   * The prefetch (and our worker's concurrency) of each drain measurement; the last is also that
   * of the `--handler` and `--exec` rows.
   */
  prefetches: readonly number[];
  /** Times each throughput is measured; the median is reported. */
  rounds: number;
  /** Runs of each one-shot sender. */
  oneShotRuns: number;
  /** Tasks per second published for the end-to-end latency. */
  latencyRate: number;
  /** Seconds of publishing measured for the end-to-end latency, after one of warm-up. */
  latencySeconds: number;
  /** Tasks the worker does before its memory is first read. */
  memoryWarmUp: number;
  /** Tasks the worker does between the two readings of its memory. */
  memoryTasks: number;
  /**
   * Milliseconds the whole run may take; then the measurement under way is stopped, the rest are
   * not run, and the table says so.
   */
  timeLimit: number;
}

/** What every measurement gets. */
export interface StepContext {
  /** The broker's URL, for the processes under test. */
  url: string;
  /** The bench's own connection, for queues. */
  broker: Broker;
  /** The sizes of the run. */
  config: BenchConfig;
  /** Aborted when the bench is interrupted. */
  signal: AbortSignal;
}

/** The figures of one row. */
export type Figures = Pick<Row, "plain" | "ours">;

/** One measurement of the bench. */
export interface Step {
  /** Its name, for progress lines. */
  title: string;
  /** How it measures, in a sentence or three of markdown, for the results file. */
  method: string;
  /** Its rows, without figures: the table has them even when the measurement fails. */
  rows: Row[];
  /** Measures; resolves with the figures of each row, in order. */
  run(context: StepContext): Promise<Figures[]>;
}
