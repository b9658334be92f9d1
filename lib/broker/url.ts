/**
 * Broker addresses: validation, the default, and how they are shown to people. A password must
 * never reach a terminal or a log, so every address that is printed goes through here.
 *
 * @module
 */

/** Where the broker is when neither `--url` nor `AMQP_URL` says otherwise. */
export const DEFAULT_URL = "amqp://localhost:5672";

/**
 * Checks that `url` is an `amqp://` or `amqps://` address.
 *
 * @throws {TypeError} when it is not.
 */
export function parseAmqpUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`Invalid broker URL "${redactSecrets(url)}": not a URL`);
  }
  if (parsed.protocol !== "amqp:" && parsed.protocol !== "amqps:") {
    throw new TypeError(
      `Invalid broker URL "${redactSecrets(url)}": the scheme must be amqp:// or amqps://`,
    );
  }
  if (parsed.hostname === "") {
    throw new TypeError(`Invalid broker URL "${redactSecrets(url)}": no host`);
  }
  return parsed;
}

/**
 * The address as people should see it: scheme, host, port and vhost, never the user or password.
 * `amqp://user:secret@rabbit/prod` -> `amqp://rabbit:5672/prod`.
 */
export function displayUrl(url: string | URL): string {
  let parsed: URL;
  try {
    parsed = typeof url === "string" ? new URL(url) : url;
  } catch {
    return redactSecrets(String(url));
  }
  const port = parsed.port || (parsed.protocol === "amqps:" ? "5671" : "5672");
  const vhost = parsed.pathname === "/" ? "" : parsed.pathname;
  return `${parsed.protocol}//${parsed.hostname}:${port}${vhost}`;
}

/** Removes `user:password@` from every URL in a piece of text (error messages, stack traces). */
export function redactSecrets(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@"']*@/gi, "$1");
}
