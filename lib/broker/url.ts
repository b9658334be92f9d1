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
  const invalid = (why: string) => new TypeError(`Invalid broker URL "${maskUrl(url)}": ${why}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid("not a URL");
  }
  if (parsed.protocol !== "amqp:" && parsed.protocol !== "amqps:") {
    throw invalid("the scheme must be amqp:// or amqps://");
  }
  if (parsed.hostname === "") throw invalid("no host");
  for (const part of [parsed.username, parsed.password, parsed.pathname]) {
    try {
      decodeURIComponent(part);
    } catch {
      throw invalid("a %-escape in the user, password or vhost is not valid (write % as %25)");
    }
  }
  return parsed;
}

/**
 * A URL that may not parse, as it can be shown in an error: anything that could be a password
 * hidden, whatever the parse failure (an unencoded `@`, `/` or `,` in a password included).
 * `amqp://u:pa/ss@rabbit` -> `amqp://***@rabbit`.
 */
export function maskUrl(text: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(text)?.[0] ?? "";
  const at = text.lastIndexOf("@");
  if (at >= 0) return `${scheme}***@${text.slice(at + 1)}`;
  // No "@" left (a list cut inside a password): "user:" and a non-numeric "port" is a secret.
  const rest = text.slice(scheme.length);
  const colon = /^([^:/?#]*):(?!\d*(?:[/?#]|$))/.exec(rest);
  return colon ? `${scheme}${colon[1]}:***` : text;
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
