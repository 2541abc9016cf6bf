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

/**
 * Objects and arrays nest at most this deep. Falco's output fields are flat, and the recursive
 * steps after the parse (revive, sort, stringify) would otherwise run out of stack on a 15 KB body.
 */
export const MAX_DEPTH = 32;

export class TooDeepError extends SyntaxError {
  constructor() {
    super(`objects and arrays are nested more than ${MAX_DEPTH} levels deep`);
  }
}

/** A LosslessNumber that JSON.stringify writes as a marker, so the serializer can put its text back. */
class ExactNumber extends LosslessNumber {
  toJSON(): string {
    return MARK + this.value;
  }
}

export function parseLossless(text: string): unknown {
  return parseLosslessKeepingText(text, '').value;
}

/**
 * parseLossless, plus the exact text of the top-level object's `key` value when that text is
 * already what stringifyLossless would write for it with its keys sorted (flat object, sorted
 * unique keys, no whitespace, numbers and string escapes as JSON.stringify writes them). Falco
 * sends its output_fields that way, so ingest can store that text as it came instead of
 * re-serialising the largest part of every event.
 */
export function parseLosslessKeepingText(text: string, key: string): { value: unknown; keptText?: string } {
  if (text.includes('#LN#') && MARK_IN_TEXT.test(text)) throw new SyntaxError('the sequence \\u0000#LN# is reserved');
  // The marker starts with NUL, which JSON can only write as an escape; spelled with other escapes
  // (\u0000\u0023LN#…) it passes the test above, so such bodies are checked once parsed.
  const s = scan(text, key);
  if (text.includes('\\u0000') && holdsMark(JSON.parse(text))) throw new SyntaxError('the sequence \\u0000#LN# is reserved');
  const keptText = s.kept ? text.slice(s.kept[0], s.kept[1]) : undefined;
  const spans = s.unsafe;
  if (spans === null) return { value: JSON.parse(text), keptText };
  let marked = '';
  let last = 0;
  for (let i = 0; i < spans.length; i += 2) {
    marked += text.slice(last, spans[i]) + '"' + MARK_ESCAPED + text.slice(spans[i], spans[i + 1]) + '"';
    last = spans[i + 1];
  }
  marked += text.slice(last);
  return { value: revive(JSON.parse(marked)), keptText };
}

interface Scan {
  /** Start and end offsets of number tokens outside strings that a double may not keep exactly. */
  unsafe: number[] | null;
  /** [start, end) of the canonical text of the top-level `key` value. */
  kept: [number, number] | null;
}

const isSpace = (c: number) => c === 32 || c === 10 || c === 13 || c === 9;

/**
 * One pass over the text outside strings (strings are skipped with indexOf): finds the unsafe
 * number tokens and, for `key`, whether its value's text is canonical. Syntax is left to
 * JSON.parse, which runs next; on valid JSON a string followed by ':' is a key.
 */
function scan(text: string, key: string): Scan {
  let unsafe: number[] | null = null;
  const n = text.length;
  let depth = 0;
  let i = 0;
  /** Where the key's value is: 0 not reached, 1 next, 2 inside its object, 3 past it. */
  let at = 0;
  let keyCount = 0;
  let canonical = key !== '';
  let start = -1;
  let end = -1;
  let prevFrom = -1;
  let prevTo = -1;
  /** The next backslash at or after the current string, so the text is searched once. */
  let nextBackslash = -1;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      const from = i + 1;
      let j = from;
      for (;;) {
        j = text.indexOf('"', j);
        if (j < 0) return { unsafe, kept: null };
        let k = j - 1;
        while (text.charCodeAt(k) === 92) k--;
        if ((j - 1 - k) % 2 === 0) break;
        j++;
      }
      i = j + 1;
      if (key === '' || (depth !== 1 && !(at === 2 && depth === 2))) continue;
      if (nextBackslash < from && nextBackslash !== n) {
        nextBackslash = text.indexOf('\\', from);
        if (nextBackslash < 0) nextBackslash = n;
      }
      const escaped = nextBackslash < j;
      let k = i;
      while (isSpace(text.charCodeAt(k))) k++;
      const isKey = text.charCodeAt(k) === 58;
      if (depth === 1) {
        if (!isKey) {
          if (at === 1) at = 3;
          continue;
        }
        if (j - from !== key.length && !escaped) continue;
        const name = text.slice(from, j);
        if (name === key) {
          keyCount++;
          at = 1;
        } else if (escaped || name.toLowerCase() === key) {
          canonical = false;
        }
      } else if (isKey) {
        if (escaped || (prevFrom >= 0 && compareRanges(text, prevFrom, prevTo, from, j) >= 0)) canonical = false;
        prevFrom = from;
        prevTo = j;
      } else if (escaped && !canonicalEscapes(text, from, j)) {
        canonical = false;
      }
      continue;
    }
    if (c === 123 || c === 91) {
      if (++depth > MAX_DEPTH) throw new TooDeepError();
      if (at === 1) {
        if (c === 123 && depth === 2) start = i;
        else canonical = false;
        at = 2;
      } else if (at === 2) canonical = false;
      i++;
      continue;
    }
    if (c === 125 || c === 93) {
      if (at === 2 && depth === 2) {
        at = 3;
        end = i + 1;
      }
      depth--;
      i++;
      continue;
    }
    if (c === 45 || (c >= 48 && c <= 57)) {
      const from = i;
      let digits = 0;
      let exponent = false;
      let fraction = false;
      for (; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d >= 48 && d <= 57) digits++;
        else if (d === 101 || d === 69) exponent = true;
        else if (d === 46) fraction = true;
        else if (d !== 45 && d !== 43) break;
      }
      if (digits > 15 || exponent) (unsafe ??= []).push(from, i);
      else if (at === 2 && (fraction || (c === 45 && text.charCodeAt(from + 1) === 48))) {
        // JSON.stringify writes 1.50 as 1.5 and -0 as 0.
        const t = text.slice(from, i);
        if (String(Number(t)) !== t) canonical = false;
      }
      if (at === 1) at = 3;
      continue;
    }
    if (at === 2 && isSpace(c)) canonical = false;
    else if (at === 1 && !isSpace(c) && c !== 58) at = 3;
    i++;
  }
  return { unsafe, kept: canonical && keyCount === 1 && start >= 0 && end > start ? [start, end] : null };
}

/** Compares text[a, aEnd) with text[b, bEnd) as strings compare (UTF-16 code units). */
function compareRanges(text: string, a: number, aEnd: number, b: number, bEnd: number): number {
  const n = Math.min(aEnd - a, bEnd - b);
  for (let i = 0; i < n; i++) {
    const d = text.charCodeAt(a + i) - text.charCodeAt(b + i);
    if (d !== 0) return d;
  }
  return aEnd - a - (bEnd - b);
}

/** True when every escape in text[from, to) is written as JSON.stringify plus Go's HTML escaping would write it. */
function canonicalEscapes(text: string, from: number, to: number): boolean {
  for (let i = text.indexOf('\\', from); i !== -1 && i < to; i = text.indexOf('\\', i + 2)) {
    const e = text.charCodeAt(i + 1);
    // " \ b f n r t
    if (e === 34 || e === 92 || e === 98 || e === 102 || e === 110 || e === 114 || e === 116) continue;
    if (e !== 117) return false;
    const hex = text.slice(i + 2, i + 6);
    if (!/^[0-9a-f]{4}$/.test(hex)) return false;
    const code = parseInt(hex, 16);
    const short = code === 8 || code === 9 || code === 10 || code === 12 || code === 13;
    if (!((code < 0x20 && !short) || code === 0x3c || code === 0x3e || code === 0x26 || code === 0x2028 || code === 0x2029)) return false;
    i += 4;
  }
  return true;
}

function holdsMark(value: unknown): boolean {
  if (typeof value === 'string') return value.includes(MARK);
  if (value === null || typeof value !== 'object') return false;
  for (const k in value as Record<string, unknown>) if (k.includes(MARK) || holdsMark((value as Record<string, unknown>)[k])) return true;
  return false;
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
  for (const k in o) setOwn(o, k, revive(o[k]));
  return o;
}

/**
 * o[k] = v, also for the key `__proto__`: alert text may carry it at any depth, and a plain
 * assignment would set the object's prototype instead (dropping the key, polluting the object).
 */
export function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
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
  return escapeHtml(stringifyExact(value));
}

/** JSON.stringify with exact numbers written verbatim (no HTML escaping). */
export function stringifyExact(value: unknown): string {
  const text = JSON.stringify(value) ?? 'null';
  return text.includes('#LN#') ? text.replace(MARKED_OUTPUT, '$1') : text;
}

/** Go's HTML escaping of JSON text; these characters only occur inside JSON strings. */
export function escapeHtml(text: string): string {
  return HTML_UNSAFE.test(text) ? text.replace(HTML_UNSAFE_ALL, (c) => HTML_ESCAPES[c]) : text;
}

/** An exact number from its text, for code that builds events itself. */
export function exactNumber(text: string): LosslessNumber {
  if (!JSON_NUMBER.test(text)) throw new SyntaxError(`invalid number ${text}`);
  return new ExactNumber(text);
}
