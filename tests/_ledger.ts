/**
 * The fault tests' ledger: task bodies the producer saw confirmed against task bodies a worker
 * finished. "Nothing lost" means every confirmed task finished at least once.
 *
 * @module
 */

import type { ScriptProcess } from "./_helpers.ts";

/** Tasks each worker finished: the body of each ` [x] Received` line followed by ` [x] Done`. */
export function finishedTasks(workers: Iterable<ScriptProcess>): string[] {
  const finished: string[] = [];
  for (const worker of workers) {
    // Prefetch 1: a worker does one task at a time, so Done closes the last Received. A task
    // delivered again (quorum queues count deliveries) reads "Received '...' (attempt 2 of 4)".
    let current: string | undefined;
    for (const line of worker.stdout) {
      const received = /^ \[x\] Received '(.*)'(?: \(attempt \d+ of \d+\))?$/.exec(line);
      if (received) current = received[1];
      else if (line === " [x] Done" && current !== undefined) {
        finished.push(current);
        current = undefined;
      }
    }
  }
  return finished;
}

/** How the confirmed tasks fared. */
export interface LedgerReport {
  lost: string[];
  duplicated: number;
  total: number;
}

/** Compares confirmed with finished tasks and prints `lost / duplicated / total`. */
export function reconcile(
  label: string,
  confirmed: Iterable<string>,
  finished: string[],
): LedgerReport {
  const counts = new Map<string, number>();
  for (const body of finished) counts.set(body, (counts.get(body) ?? 0) + 1);
  const confirmedList = [...confirmed];
  const lost = confirmedList.filter((body) => !counts.has(body));
  const duplicated = [...counts.values()].reduce((sum, n) => sum + (n - 1), 0);
  console.log(
    `${label}: lost ${lost.length} / duplicated ${duplicated} / total ${confirmedList.length}`,
  );
  return { lost, duplicated, total: confirmedList.length };
}
