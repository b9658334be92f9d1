/**
 * How a topic exchange matches routing keys, for tests that follow the delay levels' bindings.
 *
 * @module
 */

/** A topic exchange's match of `key` against `pattern` (`*` one word, `#` zero or more). */
export function topicMatches(pattern: string, key: string): boolean {
  const match = (p: string[], k: string[]): boolean => {
    if (p.length === 0) return k.length === 0;
    const [head, ...rest] = p;
    if (head === "#") return k.some((_, i) => match(rest, k.slice(i))) || match(rest, []);
    if (k.length === 0) return false;
    return (head === "*" || head === k[0]) && match(rest, k.slice(1));
  };
  return match(pattern.split("."), key.split("."));
}
