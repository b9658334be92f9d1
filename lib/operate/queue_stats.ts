/**
 * How a task queue is doing: ready, unacked and consumers for the queue, the tasks waiting in its
 * delay levels for their time (delayed tasks and retries) and the next one due, and its dead
 * queue. AMQP alone gives ready and consumers (a passive declare); RabbitMQ's management API, when
 * it answers, adds unacked counts and rates.
 *
 * @module
 */

import { type ChannelOpener, checkQueue } from "../amqp.ts";
import type { TaskQueue } from "../topology/task_queue.ts";
import { AmqpError } from "../broker/errors.ts";
import { maskUrl, redactSecrets } from "../broker/url.ts";
import { findNextDue, type NextDue } from "./next_due.ts";

export type { NextDue } from "./next_due.ts";

/** Counts for one queue. */
export interface QueueCounts {
  /** The queue's name. */
  name: string;
  /** Messages ready for delivery. */
  ready: number;
  /** Messages delivered and not yet acked; null without the management API. */
  unacked: number | null;
  /** Consumers attached. */
  consumers: number;
}

/** Per-second rates of the task queue, from the management API. */
export interface QueueRates {
  publish: number;
  deliver: number;
  ack: number;
}

/** The state of a task queue and the queues around it. */
export interface QueueStats extends QueueCounts {
  /** Tasks waiting in the delay levels for their time: delayed tasks and retries. */
  waiting: number;
  /** When the next of them is due (exactly, or at the latest); null when none waits. */
  nextDue: NextDue | null;
  /** Tasks parked in `<queue>.dead` (0 when there is no dead queue). */
  dead: number;
  /** The delay level queues that hold tasks, level 0 first, with their counts. */
  delayQueues: QueueCounts[];
  /** The dead queue's counts, if it exists. */
  deadQueue: QueueCounts | null;
  /** Rates, when the management API answered. */
  rates: QueueRates | null;
  /** Why the management API was not used, if it was not. */
  managementError: string | null;
}

/** Options for {@linkcode queueStats}. */
export interface QueueStatsOptions {
  /**
   * RabbitMQ's management API, e.g. `http://localhost:15672`; undefined to use AMQP only. A user
   * and password in it (`http://user:pass@host:15672`) are used instead of those of `auth`.
   * @default {undefined}
   */
  managementUrl?: string;
  /**
   * Credentials and vhost for the management API, as in an AMQP URL.
   * @default {{ username: "guest", password: "guest", vhost: "/" }}
   */
  auth?: { username: string; password: string; vhost: string };
  /**
   * Cancels the management request.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Reads the state of `queue`.
 *
 * @throws {AmqpError} with code 404 when the queue does not exist.
 */
export async function queueStats(
  connection: ChannelOpener,
  queue: TaskQueue,
  options: QueueStatsOptions = {},
): Promise<QueueStats> {
  const {
    managementUrl,
    auth = { username: "guest", password: "guest", vhost: "/" },
    signal,
  } = options;
  let management: ManagementQueue[] | undefined;
  let managementError: string | null = null;
  if (managementUrl !== undefined) {
    const endpoint = parseManagementUrl(managementUrl);
    try {
      management = await fetchQueues(
        endpoint.url,
        { ...auth, ...endpoint.credentials },
        queue.name,
        signal,
      );
    } catch (error) {
      const why = redactSecrets(error instanceof Error ? error.message : String(error));
      managementError = `the management API at ${endpoint.url} did not answer (${why})`;
    }
  }
  // Ready and consumers always come from AMQP, live; the management API's figures lag by its
  // collection interval (5 s by default), so it only adds what AMQP cannot tell.
  const unacked = (name: string) =>
    management === undefined
      ? null
      : management.find((item) => item.name === name)?.messages_unacknowledged ?? 0;
  const withUnacked = (counts: QueueCounts | null) =>
    counts && { ...counts, unacked: unacked(counts.name) };
  const main = withUnacked(await passiveCounts(connection, queue.name));
  if (!main) throw new AmqpError(`No queue "${queue}" on the broker`, { code: 404 });
  const deadQueue = withUnacked(await passiveCounts(connection, queue.deadQueue));
  // Side by side: 32 passive declares, each on a channel of its own.
  const levels = await Promise.all(
    queue.delayQueues.map((name) => passiveCounts(connection, name)),
  );
  const waitingLevels = levels.flatMap((counts, level) =>
    counts !== null && counts.ready > 0 ? [level] : []
  );
  const delayQueues = waitingLevels.map((level) => withUnacked(levels[level]!)!);
  const nextDue = waitingLevels.length === 0
    ? null
    : await findNextDue(connection, queue.name, waitingLevels);
  const stats = management?.find((item) => item.name === queue.name)?.message_stats;
  return {
    ...main,
    waiting: delayQueues.reduce((sum, q) => sum + q.ready, 0),
    nextDue,
    dead: deadQueue?.ready ?? 0,
    delayQueues,
    deadQueue,
    rates: management === undefined ? null : {
      publish: stats?.publish_details?.rate ?? 0,
      deliver: stats?.deliver_get_details?.rate ?? 0,
      ack: stats?.ack_details?.rate ?? 0,
    },
    managementError,
  };
}

async function passiveCounts(connection: ChannelOpener, name: string): Promise<QueueCounts | null> {
  const info = await checkQueue(connection, name);
  return info && { name, ready: info.messageCount, unacked: null, consumers: info.consumerCount };
}

interface ManagementQueue {
  name: string;
  messages_ready?: number;
  messages_unacknowledged?: number;
  consumers?: number;
  message_stats?: {
    publish_details?: { rate: number };
    deliver_get_details?: { rate: number };
    ack_details?: { rate: number };
  };
}

/** The management API's address without credentials, and the credentials it held. */
export interface ManagementEndpoint {
  /** The address, with no user or password: safe to print. */
  url: URL;
  /** The user and password the address held, decoded; undefined when it held none. */
  credentials?: { username: string; password: string };
}

/**
 * Checks a management API address (`http://` or `https://`) and takes the user and password out
 * of it: they go in an `Authorization` header, never in the URL, and are never printed.
 *
 * @throws {TypeError} when it is not an http:// or https:// URL; the message hides any password.
 */
export function parseManagementUrl(text: string): ManagementEndpoint {
  const invalid = (why: string) =>
    new TypeError(`Invalid management URL "${maskUrl(text)}": ${why}`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid("not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalid("the scheme must be http:// or https://");
  }
  if (url.username === "" && url.password === "") return { url };
  let credentials;
  try {
    credentials = {
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    };
  } catch {
    throw invalid("a %-escape in the user or password is not valid (write % as %25)");
  }
  url.username = "";
  url.password = "";
  return { url, credentials };
}

async function fetchQueues(
  base: URL,
  auth: { username: string; password: string; vhost: string },
  queue: string,
  signal: AbortSignal | undefined,
): Promise<ManagementQueue[]> {
  const pattern = `^${queue.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(\\.dead|\\.delay\\.L\\d\\d)?$`;
  const url = new URL(
    `api/queues/${encodeURIComponent(auth.vhost)}`,
    base.pathname.endsWith("/") ? base : `${base.href}/`,
  );
  url.search = new URLSearchParams({
    page: "1",
    page_size: "500",
    name: pattern,
    use_regex: "true",
  }).toString();
  const response = await fetch(url, {
    headers: { authorization: `Basic ${btoa(`${auth.username}:${auth.password}`)}` },
    signal: signal ?? AbortSignal.timeout(5000),
  });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`${response.status} ${response.statusText}`);
  }
  const page = await response.json() as { items?: ManagementQueue[] };
  return page.items ?? [];
}
