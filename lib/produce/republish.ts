/**
 * Moving a task: a copy published to another queue with extra headers, confirmed before the
 * original is acked. Every move (retry, park, requeue) is publish-with-confirm first, ack second:
 * a crash in between gives a duplicate, never a loss.
 *
 * @module
 */

import { type ConfirmChannel, type Message, publishPersistentTo } from "../amqp.ts";
import { AmqpError } from "../broker/errors.ts";
import type { DelayRoute } from "../topology/delays.ts";
import { BROKER_HEADERS, TASK_HEADERS } from "../topology/task_headers.ts";

/** The header that tells one move's return from another's. */
const MOVE_HEADER = TASK_HEADERS.move;

/**
 * The properties a moved task keeps. Not `expiration`: a parked task must not expire from the dead
 * queue; not `userId`: the broker checks it against the mover's own user.
 */
const CARRIED_PROPERTIES = [
  "messageId",
  "timestamp",
  "contentType",
  "contentEncoding",
  "correlationId",
  "replyTo",
  "type",
  "appId",
  "priority",
] as const;

/**
 * Publishes a copy of `message` to `target` (a queue, or a delay route) with extra `headers`,
 * persistent and mandatory, and resolves once the broker confirmed it. The caller acks the
 * original only after that.
 *
 * @throws {AmqpError} when the broker nacks or returns the copy, or the channel closes first.
 */
export function republish(
  channel: ConfirmChannel,
  to: string | DelayRoute,
  message: Pick<Message, "content" | "properties">,
  headers: Record<string, unknown>,
): Promise<void> {
  const [exchange, routingKey, target] = typeof to === "string"
    ? ["", to, to]
    : [to.exchange, to.routingKey, to.exchange];
  const { properties } = message;
  const moveId = crypto.randomUUID();
  const copied: Record<string, unknown> = { ...properties.headers, ...headers };
  for (const name of BROKER_HEADERS) delete copied[name];
  // Returns are matched by a header of this move alone: tasks without a message id (the
  // tutorial's Python producer sets none) must not match each other's returns.
  copied[MOVE_HEADER] = moveId;
  const options: Record<string, unknown> = { headers: copied };
  for (const key of CARRIED_PROPERTIES) {
    if (properties[key] !== undefined) options[key] = properties[key];
  }
  return new Promise((resolve, reject) => {
    let returned = false;
    const onReturn = (returnedMessage: Message) => {
      if (returnedMessage.properties.headers?.[MOVE_HEADER] === moveId) returned = true;
    };
    channel.on("return", onReturn);
    const done = (error?: unknown) => {
      channel.off("return", onReturn);
      if (error) {
        reject(
          new AmqpError(`Cannot move task to "${target}": ${describe(error)}`, { cause: error }),
        );
      } else if (returned) {
        reject(
          new AmqpError(
            `Cannot move task to "${target}": ${
              exchange === "" ? "no such queue" : "it routes the task to no queue"
            }`,
          ),
        );
      } else resolve();
    };
    try {
      publishPersistentTo(
        channel,
        exchange,
        routingKey,
        message.content,
        options,
        (error) => done(error),
      );
    } catch (error) {
      done(error);
    }
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
