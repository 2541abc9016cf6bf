/**
 * Lossless JSON: Falco sends int64 nanosecond timestamps that a double cannot hold, so every
 * event is parsed and written through lossless-json. Numbers stay LosslessNumber (their exact
 * text) and are written back verbatim.
 */
import { parse, stringify, isLosslessNumber, LosslessNumber } from 'lossless-json';

export { isLosslessNumber, LosslessNumber };

export function parseLossless(text: string): unknown {
  return parse(text);
}

const HTML_UNSAFE = /[<>&\u2028\u2029]/;
const HTML_UNSAFE_ALL = /[<>&\u2028\u2029]/g;
const HTML_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/**
 * Compact JSON as Go's encoder writes it (HTML-escaped), so bodies match falcosidekick's.
 * These characters can only occur inside JSON strings, so a pass over the text is safe.
 */
export function stringifyLossless(value: unknown): string {
  const text = stringify(value) ?? 'null';
  return HTML_UNSAFE.test(text) ? text.replace(HTML_UNSAFE_ALL, (c) => HTML_ESCAPES[c]) : text;
}
