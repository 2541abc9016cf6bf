/**
 * Lossless JSON. Falco sends int64 nanosecond timestamps that a double cannot hold, so numbers
 * that JSON.parse could change (more than 15 digits, or an exponent) are kept as LosslessNumber
 * (lossless-json's type: their exact text) and written back verbatim. Other numbers stay plain
 * numbers, which round-trip exactly.
 *
 * Why not lossless-json's parser for everything: it is a JavaScript parser, about 6× slower than
 * V8's JSON.parse (18 µs against 3 µs for a 1 KB Falco event here), and parsing is on the ingest
 * hot path. So a scan (string-aware, a few µs) marks the few unsafe number tokens, V8 parses, and
 * the marked tokens become LosslessNumber. A body holding the marker sequence itself is refused.
 */
import { isLosslessNumber, LosslessNumber } from 'lossless-json';

export { isLosslessNumber, LosslessNumber };

/** What an exact number becomes inside JSON.stringify's output, replaced by its text afterwards. */
const MARK = '\u0000#LN#';
/** The same, as written inside JSON text. */
const MARK_ESCAPED = '\\u0000#LN#';
const MARK_IN_TEXT = /\\u0000#LN#/i;
const MARKED_OUTPUT = /"\\u0000#LN#([^"]*)"/g;
const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

/** A LosslessNumber that JSON.stringify writes as a marker, so the serializer can put its text back. */
class ExactNumber extends LosslessNumber {
  toJSON(): string {
    return MARK + this.value;
  }
}

export function parseLossless(text: string): unknown {
  if (MARK_IN_TEXT.test(text)) throw new SyntaxError('the sequence \\u0000#LN# is reserved');
  const spans = unsafeNumbers(text);
  if (spans === null) return JSON.parse(text);
  let marked = '';
  let last = 0;
  for (let i = 0; i < spans.length; i += 2) {
    marked += text.slice(last, spans[i]) + '"' + MARK_ESCAPED + text.slice(spans[i], spans[i + 1]) + '"';
    last = spans[i + 1];
  }
  marked += text.slice(last);
  return revive(JSON.parse(marked));
}

/** Start and end offsets of number tokens outside strings that a double may not keep exactly. */
function unsafeNumbers(text: string): number[] | null {
  let spans: number[] | null = null;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // Skip the string: find its closing quote, one not escaped by an odd run of backslashes.
      i++;
      for (;;) {
        const j = text.indexOf('"', i);
        if (j < 0) return spans;
        let k = j - 1;
        while (text.charCodeAt(k) === 92) k--;
        i = j + 1;
        if ((j - 1 - k) % 2 === 0) break;
      }
      continue;
    }
    if (c === 45 || (c >= 48 && c <= 57)) {
      const start = i;
      let digits = 0;
      let exponent = false;
      for (; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d >= 48 && d <= 57) digits++;
        else if (d === 101 || d === 69) exponent = true;
        else if (d !== 45 && d !== 43 && d !== 46) break;
      }
      if (digits > 15 || exponent) (spans ??= []).push(start, i);
      continue;
    }
    i++;
  }
  return spans;
}

function revive(value: unknown): unknown {
  if (typeof value === 'string') {
    if (!value.startsWith(MARK)) return value;
    const text = value.slice(MARK.length);
    if (!JSON_NUMBER.test(text)) throw new SyntaxError(`invalid number ${text}`);
    return new ExactNumber(text);
  }
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revive(value[i]);
    return value;
  }
  const o = value as Record<string, unknown>;
  for (const k in o) o[k] = revive(o[k]);
  return o;
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
  let text = JSON.stringify(value) ?? 'null';
  if (text.includes('#LN#')) text = text.replace(MARKED_OUTPUT, '$1');
  return HTML_UNSAFE.test(text) ? text.replace(HTML_UNSAFE_ALL, (c) => HTML_ESCAPES[c]) : text;
}

/** An exact number from its text, for code that builds events itself. */
export function exactNumber(text: string): LosslessNumber {
  if (!JSON_NUMBER.test(text)) throw new SyntaxError(`invalid number ${text}`);
  return new ExactNumber(text);
}
