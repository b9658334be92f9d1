/**
 * Failover on a real three-node cluster, made by `tools/local_cluster.sh` beside the broker on
 * 5672: a quorum queue, producers and three workers given the three nodes' addresses, and the
 * node they are all connected to stopped while tasks flow, then started again. The ledger of
 * confirmed against finished tasks must show nothing lost, and the same worker processes must
 * carry on through the other nodes by themselves. The cluster is always stopped at the end.
 */

import assert from "node:assert/strict";
import { connect } from "../lib/broker/connection.ts";
import { rabbitmqctl } from "./_broker_admin.ts";
import {
  onBrokerHost,
  runScript,
  type ScriptProcess,
  startScript,
  uniqueQueue,
  waitUntil,
} from "./_helpers.ts";
import { finishedTasks, reconcile } from "./_ledger.ts";

const CLUSTER_SCRIPT = new URL("../tools/local_cluster.sh", import.meta.url).pathname;

/** The nodes as tools/local_cluster.sh names them, in the order of its AMQP_URL list. */
const NODE_NAMES = ["wq1@localhost", "wq2@localhost", "wq3@localhost"];

interface ClusterNode {
  name: string;
  url: string;
  port: number;
}

/** Runs `tools/local_cluster.sh command`; throws with its output when it fails. */
async function localCluster(command: "start" | "stop"): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command("bash", {
    args: [CLUSTER_SCRIPT, command],
    stdin: "null",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
  if (code !== 0) {
    throw new Error(
      `tools/local_cluster.sh ${command} failed (exit ${code}):\n${decode(stderr)}\n${
        decode(stdout)
      }`,
    );
  }
  return decode(stdout);
}

/** Starts the cluster; the nodes in the order of the AMQP_URL list it prints. */
async function startCluster(): Promise<ClusterNode[]> {
  const printed = await localCluster("start");
  const list = /^AMQP_URL=(.+)$/m.exec(printed)?.[1];
  assert.ok(list, `no AMQP_URL line in: ${printed}`);
  const urls = list.split(",");
  assert.equal(urls.length, NODE_NAMES.length, list);
  return urls.map((url, i) => ({ name: NODE_NAMES[i]!, url, port: Number(new URL(url).port) }));
}

/** `rabbitmqctl -n node ... --formatter json`, parsed. */
async function ctlJson<T>(node: string, ...args: string[]): Promise<T> {
  return JSON.parse(await rabbitmqctl("-n", node, ...args, "-q", "--formatter", "json")) as T;
}

interface QueueRow {
  name: string;
  type: string;
  members?: string[];
  online?: string[];
  messages_ready: number;
  messages_unacknowledged: number;
}

/** The queue as `node` reports it; undefined when it does not exist. */
async function queueRow(node: string, queue: string): Promise<QueueRow | undefined> {
  const rows = await ctlJson<QueueRow[]>(
    node,
    "list_queues",
    "name",
    "type",
    "members",
    "online",
    "messages_ready",
    "messages_unacknowledged",
  );
  return rows.find((row) => row.name === queue);
}

/** The nodes running in the cluster, as `node` sees it. */
async function runningNodes(node: string): Promise<string[]> {
  return (await ctlJson<{ running_nodes: string[] }>(node, "cluster_status")).running_nodes;
}

const sorted = (names: Iterable<string>) => [...names].sort();

Deno.test(
  onBrokerHost(
    "on a three-node cluster, stopping the node the clients use loses no confirmed task of a quorum queue, and the same workers carry on",
    "tools/local_cluster.sh starts its nodes on this machine, where the broker's rabbitmqctl must reach them",
  ),
  async () => {
    const queue = uniqueQueue("cluster");
    const workers: ScriptProcess[] = [];
    const confirmed: string[] = [];
    let producing = false;
    let producers: Promise<unknown> = Promise.resolve();
    let nodes: ClusterNode[] = [];
    try {
      nodes = await startCluster();
      const list = nodes.map((node) => node.url).join(",");
      const first = nodes[0]!;

      for (let i = 0; i < 3; i++) {
        workers.push(
          startScript("worker.ts", [
            "--queue",
            queue,
            "--queue-type",
            "quorum",
            "--url",
            list,
            // 20 ms a task: each worker is likely to be in the middle of one when its node stops.
            "--dot-ms",
            "20",
          ]),
        );
      }
      for (const worker of workers) await worker.waitForLines(/Waiting for messages/);

      const declared = await queueRow(first.name, queue);
      assert.equal(declared?.type, "quorum", JSON.stringify(declared));
      assert.deepEqual(
        sorted(declared.members ?? []),
        sorted(NODE_NAMES),
        "a member on every node",
      );

      // Only the workers are connected yet: find the node they chose (the list's first that
      // answers, so all three on one node). That is the node to stop.
      const ports = (await ctlJson<Array<{ port: number }>>(first.name, "list_connections", "port"))
        .map((row) => Number(row.port));
      assert.ok(ports.length >= 3, `the workers' connections: ${ports}`);
      const victim = nodes.find((node) => node.port === ports[0])!;
      assert.ok(
        ports.every((port) => port === victim.port),
        `all workers on one node: ${ports}`,
      );
      const survivors = nodes.filter((node) => node !== victim);

      // Producers given the same list: one-shot sends, and batches on one connection (--stdin).
      const env = { AMQP_URL: list, TASK_QUEUE_TYPE: "quorum" };
      const sendArgs = ["--queue", queue, "--confirm-timeout", "10000"];
      let oneShotsConfirmed = 0;
      let batchesConfirmed = 0;
      producing = true;
      producers = Promise.all([
        (async () => {
          for (let i = 0; producing; i++) {
            const body = `one-${i}.`;
            const sent = await runScript("new_task.ts", [...sendArgs, body], { env });
            if (sent.code === 0) {
              confirmed.push(body);
              oneShotsConfirmed++;
            }
          }
        })(),
        (async () => {
          for (let b = 0; producing; b++) {
            const bodies = Array.from({ length: 40 }, (_, i) => `batch-${b}-${i}.`);
            const sent = await runScript("new_task.ts", [...sendArgs, "--stdin"], {
              env,
              stdin: bodies.join("\n") + "\n",
            });
            // On failure it names how many of the first tasks were all confirmed.
            const prefix = sent.code === 0
              ? bodies.length
              : Number(/the first (\d+) are all confirmed/.exec(sent.stderr)?.[1] ?? 0);
            confirmed.push(...bodies.slice(0, prefix));
            if (sent.code === 0) batchesConfirmed++;
          }
        })(),
      ]);
      // Awaited below; until then a failed send loop must not count as an unhandled rejection.
      producers.catch(() => {});
      const flowing = async (what: string) => {
        const [ones, batches] = [oneShotsConfirmed, batchesConfirmed];
        await waitUntil(
          `tasks confirmed ${what}`,
          () => oneShotsConfirmed >= ones + 5 && batchesConfirmed >= batches + 2,
          60_000,
        );
      };
      await flowing("before the stop");

      await rabbitmqctl("-n", victim.name, "stop_app");
      for (const worker of workers) {
        await waitUntil(
          `the worker to reconnect to another node by itself: ${worker.transcript()}`,
          () =>
            worker.stderr.some((line) =>
              survivors.some((node) => line === `Reconnected to ${node.url}; consuming again`)
            ),
          30_000,
        );
      }
      const doneAtFailover = workers.map((worker) => worker.matching(/^ \[x\] Done$/).length);
      await flowing(`through ${survivors.map((node) => node.name).join(" and ")}`);
      assert.deepEqual(
        sorted(await runningNodes(survivors[0]!.name)),
        sorted(survivors.map((n) => n.name)),
      );

      await rabbitmqctl("-n", victim.name, "start_app");
      await rabbitmqctl("-n", victim.name, "await_startup", "--timeout", "60");
      await waitUntil(
        `${victim.name} running in the cluster again`,
        async () => sorted(await runningNodes(victim.name)).join() === sorted(NODE_NAMES).join(),
      );
      await waitUntil(
        `the queue's member on ${victim.name} online again`,
        async () => (await queueRow(victim.name, queue))?.online?.includes(victim.name) ?? false,
        30_000,
      );
      await flowing("after the rejoin");

      producing = false;
      await producers;
      await waitUntil("every confirmed task finished", () => {
        const done = new Set(finishedTasks(workers));
        return confirmed.every((body) => done.has(body));
      }, 60_000).catch(async (error) => {
        const row = await queueRow(victim.name, queue);
        const { lost } = reconcile("cluster failover", confirmed, finishedTasks(workers));
        throw new Error(
          `${error.message}: ${lost.length} not finished (${lost.slice(0, 10)}), queue ${
            JSON.stringify(row)
          }${workers.map((worker) => worker.transcript()).join("")}`,
        );
      });
      const report = reconcile("cluster failover", confirmed, finishedTasks(workers));
      assert.deepEqual(report.lost, []);
      workers.forEach((worker, i) =>
        assert.ok(
          worker.matching(/^ \[x\] Done$/).length > doneAtFailover[i]!,
          `the same worker went on doing tasks: ${worker.transcript()}`,
        )
      );
      await waitUntil("the queue drained", async () => {
        const row = await queueRow(victim.name, queue);
        return row?.messages_ready === 0 && row.messages_unacknowledged === 0;
      });
    } finally {
      producing = false;
      await producers.catch(() => {});
      for (const worker of workers) await worker[Symbol.asyncDispose]();
      if (nodes.length > 0) await deleteQueues(nodes, queue).catch(() => {});
      await localCluster("stop");
    }
  },
);

/** Deletes `queue` and the queues the worker made beside it (the cluster goes with them anyway). */
async function deleteQueues(nodes: ClusterNode[], queue: string): Promise<void> {
  const names = (await ctlJson<Array<{ name: string }>>(nodes[0]!.name, "list_queues", "name"))
    .map((row) => row.name)
    .filter((name) => name === queue || name.startsWith(`${queue}.`));
  const connection = await connect(nodes.map((node) => node.url).join(","));
  try {
    const channel = await connection.createChannel();
    for (const name of names) await channel.deleteQueue(name);
    await channel.close();
  } finally {
    await connection.close();
  }
}
