/**
 * A queue that another program declared first, with other arguments than ours: what it really is
 * (learned from the broker's refusals, one argument at a time), whether it can drop what it holds,
 * and using it as it is when it cannot.
 *
 * @module
 */

import {
  type Channel,
  type ChannelOpener,
  checkDeclared,
  declareDurable,
  declareRefused,
  openChannel,
  type QueueInfo,
} from "../amqp.ts";
import { AmqpError, brokerReason, replyCode } from "../broker/errors.ts";

/** What the broker said differs: `inequivalent arg 'x-message-ttl' ... current is the value '1'`. */
export interface Mismatch {
  /** The argument or property: `x-message-ttl`, `durable`, `auto_delete`, ... */
  arg: string;
  /** Its value on the existing queue, or undefined when it has none. */
  current: unknown;
}

/**
 * Reads a PRECONDITION_FAILED reason of queue.declare, in the wordings of RabbitMQ 3.x and 4.x.
 * Undefined when the reason is not an argument mismatch.
 */
export function parseMismatch(reason: string): Mismatch | undefined {
  const arg = /inequivalent arg '([^']+)'/.exec(reason)?.[1];
  if (arg === undefined) return undefined;
  const current = /current is (?:the value )?(none|'([^']*)'(?: of type '(\w+)')?)/.exec(reason);
  if (!current || current[1] === "none") return { arg, current: undefined };
  const [, , text = "", type] = current;
  if (type === undefined) {
    return { arg, current: text === "true" ? true : text === "false" ? false : text };
  }
  if (type === "longstr" || type === "shortstr") return { arg, current: text };
  if (type === "bool") return { arg, current: text === "true" };
  const number = Number(text);
  return { arg, current: Number.isFinite(number) ? number : text };
}

/** Why a queue with these arguments can lose tasks, or undefined when it cannot. */
export function lossReason(
  args: Readonly<Record<string, unknown>>,
  properties: { durable: boolean; autoDelete: boolean },
): string | undefined {
  if (!properties.durable) return "it is not durable (a broker restart empties it)";
  if (properties.autoDelete) {
    return "it is auto-delete (it goes, with its tasks, when its last consumer does)";
  }
  if (args["x-message-ttl"] !== undefined) {
    return `its tasks expire (x-message-ttl ${args["x-message-ttl"]} ms)`;
  }
  if (args["x-expires"] !== undefined) {
    return `it deletes itself when unused (x-expires ${args["x-expires"]} ms)`;
  }
  const overflow = String(args["x-overflow"] ?? "drop-head");
  for (const limit of ["x-max-length", "x-max-length-bytes"]) {
    if (args[limit] !== undefined && !overflow.startsWith("reject-publish")) {
      return `it drops its oldest tasks past a length limit (${limit} ${
        args[limit]
      }, x-overflow ${overflow})`;
    }
  }
  if (args["x-delivery-limit"] !== undefined) {
    return `it drops tasks delivered too often (x-delivery-limit ${args["x-delivery-limit"]})`;
  }
  return undefined;
}

/** Options for {@linkcode declareOrAdopt}. */
export interface DeclareOrAdoptOptions {
  /**
   * Open a confirm channel.
   * @default {false}
   */
  confirm?: boolean;
  /**
   * Use a queue that can drop tasks anyway (with a warning) instead of refusing it.
   * @default {false}
   */
  allowLossy?: boolean;
  /**
   * Called once when the queue exists with other arguments and is used as it is.
   * @default {() => {}}
   */
  onWarning?: (message: string) => void;
  /**
   * What the warning calls a queue that differs only in type.
   * @default {"classic"}
   */
  askedType?: string;
  /**
   * Why a queue with the arguments found can lose what it holds: refused unless `allowLossy`.
   * @default {lossReason}
   */
  lossReason?: typeof lossReason;
  /**
   * Why a queue with the arguments found cannot serve at all: refused whatever `allowLossy` says.
   * @default {() => undefined}
   */
  unusableReason?: (args: Readonly<Record<string, unknown>>) => string | undefined;
}

/** A channel on which a queue is known to exist. */
export interface DeclaredQueue<C extends Channel> {
  /** The open channel. */
  channel: C;
  /** The queue as the broker reported it. */
  info: QueueInfo;
}

/** Mismatches one queue can have before we stop asking. */
const MAX_ROUNDS = 8;

/**
 * Declares `queue` durable with `args`. If it exists with other arguments, declares it again with
 * each argument the broker names as it has it, until the declaration matches: then we know what
 * the queue is. A queue that can drop tasks is refused (an {@linkcode AmqpError} with code 406)
 * unless `allowLossy`; any other is used as it is, and `onWarning` says how it differs.
 *
 * @throws {AmqpError} when the queue cannot be declared or used, or would lose tasks.
 */
export async function declareOrAdopt(
  connection: ChannelOpener,
  queue: string,
  args: Record<string, unknown> | undefined,
  options: DeclareOrAdoptOptions = {},
): Promise<DeclaredQueue<Channel>> {
  const {
    confirm = false,
    allowLossy = false,
    onWarning = () => {},
    askedType = "classic",
    lossReason: lossOf = lossReason,
    unusableReason = () => undefined,
  } = options;
  const refuse = (why: string) =>
    new AmqpError(
      `Refusing queue "${queue}": ${why}. Delete it (rabbitmqctl delete_queue ${queue}) to have it declared again`,
      { code: 406 },
    );
  const judge = (found: Record<string, unknown>, knownAll = true) => {
    const unusable = unusableReason(found);
    if (unusable) throw refuse(unusable);
    const loss = lossOf(found, properties);
    if (loss) refuseOrWarn(queue, loss, allowLossy, onWarning);
    // A queue that must be exactly ours cannot be trusted on arguments we could not learn.
    if (!knownAll && options.unusableReason) {
      throw refuse(
        `its arguments differ from ours in a way that could not be learned (${
          differences.join("; ")
        })`,
      );
    }
  };
  const adopted: Record<string, unknown> = { ...args };
  const properties = { durable: true, autoDelete: false };
  const differences: string[] = [];
  let known = true;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const channel = await openChannel(connection, confirm);
    let mismatch: Mismatch | undefined;
    try {
      const info = await declareDurable(channel, queue, adopted);
      if (differences.length > 0) {
        try {
          judge(adopted);
        } catch (refusal) {
          await channel.close().catch(() => {});
          throw refusal;
        }
        onWarning(describeDifferences(queue, differences, adopted, askedType));
      }
      return { channel, info };
    } catch (error) {
      await channel.close().catch(() => {});
      if (replyCode(error) !== 406) throw declareRefused(queue, error);
      mismatch = parseMismatch(brokerReason(error));
      if (mismatch === undefined) {
        known = false;
        differences.push(brokerReason(error));
        break;
      }
    }
    const { arg, current } = mismatch;
    differences.push(arg);
    if (arg === "durable" || arg === "auto_delete" || arg === "exclusive") {
      // Properties, not arguments: they cannot be declared our way, and the queue is lossy.
      if (arg === "durable") properties.durable = current === true;
      if (arg === "auto_delete") properties.autoDelete = current === true;
      known = false;
      break;
    }
    if (adopted[arg] === current || (current === undefined && !(arg in adopted))) {
      known = false; // the broker would not take its own value back: stop asking
      break;
    }
    if (current === undefined) delete adopted[arg];
    else adopted[arg] = current;
  }
  judge(adopted, known);
  const channel = await openChannel(connection, confirm);
  try {
    const info = await checkDeclared(channel, queue);
    onWarning(describeDifferences(queue, differences, adopted, askedType, known));
    return { channel, info };
  } catch (checkError) {
    await channel.close().catch(() => {});
    throw new AmqpError(`Cannot use queue "${queue}": ${brokerReason(checkError)}`, {
      cause: checkError,
      code: replyCode(checkError),
    });
  }
}

function refuseOrWarn(
  queue: string,
  loss: string,
  allowLossy: boolean,
  onWarning: (message: string) => void,
): void {
  if (allowLossy) {
    onWarning(
      `Warning: queue "${queue}" can lose tasks: ${loss}; using it as --allow-lossy-queue asks`,
    );
    return;
  }
  throw new AmqpError(
    `Refusing queue "${queue}": ${loss}, so a task in it could be lost. Delete it (rabbitmqctl delete_queue ${queue}) to have it declared durable, or pass --allow-lossy-queue to accept the risk`,
    { code: 406 },
  );
}

function describeDifferences(
  queue: string,
  differences: readonly string[],
  adopted: Readonly<Record<string, unknown>>,
  askedType: string,
  known = true,
): string {
  if (known && differences.length === 1 && differences[0] === "x-queue-type") {
    return `Queue "${queue}" is a ${
      adopted["x-queue-type"] ?? "classic"
    } queue, not ${askedType} as asked; using it as it is`;
  }
  const shown = Object.entries(adopted).map(([key, value]) => `${key} ${value}`).join(", ");
  return `Queue "${queue}" exists with other arguments; using it as it is (${
    known ? shown || "no arguments" : differences.join("; ")
  }). To have it declared as the tutorial does, delete it: rabbitmqctl delete_queue ${queue}`;
}
