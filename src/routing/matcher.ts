/**
 * Alertmanager's matchers over Falco alerts: `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`.
 *
 * Alert text is chosen by whoever triggers the alert (an attacker picks `proc.cmdline`), so regexes
 * run on RE2JS, a linear-time RE2 port, never on a backtracking RegExp: `(a+)+$` against 100 KB of
 * `a` is a few milliseconds here, where V8's RegExp takes minutes on 30 characters. Its `matches()`
 * is a full match, which is Alertmanager's anchoring (`^(?:re)$`), and its syntax is Go's.
 *
 * Matching runs at ingest for every alert and every output instance: a regex is compiled once, when
 * the matcher is built, and equality matchers compare without building any string.
 */
import { RE2JS } from 're2js';
import type { FalcoEvent } from '../event/falco-event.ts';
import { isLosslessNumber, stringifyExact, type LosslessNumber } from '../event/json.ts';
import { MatcherError } from '../errors.ts';

export { MatcherError };

export type MatchOp = '=' | '!=' | '=~' | '!~';

const OPS: readonly MatchOp[] = ['=', '!=', '=~', '!~'];

/** Where a name is read from; anything else is an output_fields key. */
const ALERT_KEYS = ['rule', 'priority', 'source', 'hostname', 'output'] as const;
type AlertKey = (typeof ALERT_KEYS)[number];

const READ_ALERT = 0;
const READ_TAGS = 1;
const READ_FIELD = 2;

export class Matcher {
  readonly name: string;
  readonly op: MatchOp;
  readonly value: string;
  readonly #read: number;
  readonly #alertKey: AlertKey | undefined;
  readonly #negated: boolean;
  readonly #re: RE2JS | undefined;
  /** What every match of the regex starts with (RE2's literal prefix, as Go's LiteralPrefix); '' when none. */
  readonly #prefix: string = '';
  /** Set when the regex is that literal and nothing else: a full match is equality. */
  readonly #literal: string | undefined;
  /** The value as a number when it is exactly how that number is written (String(n) === value), else NaN. */
  readonly #number: number;
  /** Names such as `constructor` would otherwise read Object.prototype from output_fields. */
  readonly #inherited: boolean;

  /** Throws MatcherError (without a column) for an empty name, an unknown operator or a bad regex. */
  constructor(name: string, op: MatchOp, value: string) {
    if (typeof name !== 'string' || name === '') throw new MatcherError('the name is empty');
    if (!OPS.includes(op)) throw new MatcherError(`unknown operator ${JSON.stringify(op)}; use =, !=, =~ or !~`);
    if (typeof value !== 'string') throw new MatcherError('the value must be a string');
    this.name = name;
    this.op = op;
    this.value = value;
    this.#negated = op === '!=' || op === '!~';
    if (op === '=~' || op === '!~') {
      try {
        this.#re = RE2JS.compile(value);
      } catch (err) {
        throw new MatcherError(`invalid regular expression: ${regexProblem(err, value)}`);
      }
      // A regex call costs about 0.1 µs even when it fails at once; routing makes one per instance
      // and per alert, and most fail on their first characters (team-b-.* against team-a-web).
      // RE2 works out the literal prefix at compile time: a string without it cannot match.
      // (re2Input is in re2js's typings; guarded, so another shape only loses the shortcut.)
      const compiled = this.#re.re2Input as { prefix?: unknown; prefixComplete?: unknown } | undefined;
      if (typeof compiled?.prefix === 'string') {
        this.#prefix = compiled.prefix;
        if (compiled.prefixComplete === true) this.#literal = compiled.prefix;
      }
    }
    this.#alertKey = (ALERT_KEYS as readonly string[]).includes(name) ? (name as AlertKey) : undefined;
    this.#read = this.#alertKey !== undefined ? READ_ALERT : name === 'tags' ? READ_TAGS : READ_FIELD;
    const n = Number(value);
    this.#number = value !== '' && String(n) === value ? n : NaN;
    this.#inherited = name in Object.prototype;
  }

  /** Whether the alert satisfies this matcher; a field the alert lacks reads as "". */
  matches(ev: FalcoEvent): boolean {
    let hit: boolean;
    if (this.#read === READ_ALERT) hit = this.#holds(alertValue(ev, this.#alertKey!));
    else if (this.#read === READ_TAGS) hit = this.#anyTag(ev.tags);
    else hit = this.#holdsField(ev.output_fields);
    return hit !== this.#negated;
  }

  /** Canonical text: bare name when it may be, operator, value always quoted; parses back to an equal matcher. */
  toString(): string {
    return `${isBareName(this.name) ? this.name : quote(this.name)}${this.op}${quote(this.value)}`;
  }

  toJSON(): string {
    return this.toString();
  }

  /** `=` and `=~`, before negation. */
  #holds(text: string): boolean {
    if (this.#re === undefined) return text === this.value;
    if (this.#literal !== undefined) return text === this.#literal;
    if (!text.startsWith(this.#prefix)) return false;
    return this.#re.matches(text);
  }

  /** A list holds when one of its items does; an alert without tags reads as one empty tag, as a missing field reads "". */
  #anyTag(tags: readonly string[]): boolean {
    if (tags.length === 0) return this.#holds('');
    for (let i = 0; i < tags.length; i++) if (this.#holds(tags[i])) return true;
    return false;
  }

  #holdsField(fields: Record<string, unknown>): boolean {
    const v = this.#inherited && !Object.hasOwn(fields, this.name) ? undefined : fields[this.name];
    if (typeof v === 'string') return this.#holds(v);
    if (v === undefined || v === null) return this.#holds('');
    if (this.#re === undefined) {
      // Equality without writing the value out: the same answer as comparing valueText(v).
      if (typeof v === 'number') return v === this.#number;
      if (typeof v === 'boolean') return this.value === (v ? 'true' : 'false');
      if (isLosslessNumber(v)) return (v as LosslessNumber).value === this.value;
    }
    return this.#holds(valueText(v));
  }
}

function alertValue(ev: FalcoEvent, key: AlertKey): string {
  switch (key) {
    case 'rule':
      return ev.rule;
    case 'priority':
      return ev.priority;
    case 'source':
      return ev.source;
    case 'hostname':
      return ev.hostname;
    case 'output':
      return ev.output;
  }
}

/**
 * An output field's value as matchers read it: strings as they are, numbers by their exact text
 * (int64 included, as stored), booleans `true`/`false`, null and missing `""`, objects and arrays
 * as compact JSON.
 */
export function valueText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) return '';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (isLosslessNumber(v)) return v.value;
  return stringifyExact(v);
}

/** What a matcher named `name` reads from the alert: a string, or the tags (route-test shows it). */
export function fieldText(ev: FalcoEvent, name: string): string | readonly string[] {
  if ((ALERT_KEYS as readonly string[]).includes(name)) return alertValue(ev, name as AlertKey);
  if (name === 'tags') return ev.tags;
  return valueText(Object.hasOwn(ev.output_fields, name) ? ev.output_fields[name] : undefined);
}

/** True when every matcher holds (an empty list holds). */
export function matchesAll(matchers: readonly Matcher[], ev: FalcoEvent): boolean {
  return firstFailing(matchers, ev) < 0;
}

/** Index of the first matcher that does not hold, or -1 when all do. */
export function firstFailing(matchers: readonly Matcher[], ev: FalcoEvent): number {
  for (let i = 0; i < matchers.length; i++) if (!matchers[i].matches(ev)) return i;
  return -1;
}

/** Alertmanager's API form of a matcher (silences). `isEqual` defaults to true. */
export function matcherFromObject(o: { name: string; value: string; isRegex?: boolean; isEqual?: boolean }): Matcher {
  if (o === null || typeof o !== 'object') throw new MatcherError('a matcher object has the form {"name": …, "value": …, "isRegex": false, "isEqual": true}');
  if (typeof o.name !== 'string' || o.name === '') throw new MatcherError('"name" must be a non-empty string');
  if (typeof o.value !== 'string') throw new MatcherError('"value" must be a string');
  if (o.isRegex !== undefined && typeof o.isRegex !== 'boolean') throw new MatcherError('"isRegex" must be true or false');
  if (o.isEqual !== undefined && typeof o.isEqual !== 'boolean') throw new MatcherError('"isEqual" must be true or false');
  const equal = o.isEqual ?? true;
  const op: MatchOp = o.isRegex ? (equal ? '=~' : '!~') : equal ? '=' : '!=';
  return new Matcher(o.name, op, o.value);
}

// ---------------------------------------------------------------------------------------------
// Text form

const isNameCode = (c: number) =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 /* _ */ || c === 46 /* . */ || c === 91 /* [ */ || c === 93; /* ] */

const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;

function isBareName(name: string): boolean {
  if (name === '') return false;
  for (let i = 0; i < name.length; i++) if (!isNameCode(name.charCodeAt(i))) return false;
  return true;
}

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', t: '\t', r: '\r' };
const ESCAPED: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r' };

function quote(s: string): string {
  let out = '"';
  for (const ch of s) out += ESCAPED[ch] ?? ch;
  return out + '"';
}

/**
 * Parses `name op "value"`: a bare name (letters, digits, `_ . [ ]`) or a double-quoted one, spaces
 * around the operator allowed, the value always double-quoted with `\"`, `\\`, `\n`, `\t`, `\r`
 * escapes. A backslash before any other character is kept with it, as Alertmanager's classic
 * parser does, so a regex reads as written: `"\d+\.sh"`. Errors name the 1-based column.
 */
export function parseMatcher(text: string): Matcher {
  if (typeof text !== 'string') throw new MatcherError('a matcher is a string such as rule="Terminal shell in container"');
  const n = text.length;
  const column = (i: number) => columnAt(text, i);
  const fail = (message: string, i: number): never => {
    throw new MatcherError(message, column(i));
  };
  const unexpected = (i: number, hint: string): never =>
    i >= n ? fail(`unexpected end at column ${column(i)}: ${hint}`, i) : fail(`unexpected ${shownChar(text, i)} at column ${column(i)}: ${hint}`, i);

  let i = skipSpaces(text, 0);
  if (i >= n) fail('empty matcher: write name="value", name!="value", name=~"regex" or name!~"regex"', i);
  let name: string;
  const nameAt = i;
  if (text.charCodeAt(i) === 34) {
    const q = readQuoted(text, i, 'name');
    name = q.value;
    i = q.end;
    if (name === '') fail(`empty name at column ${column(nameAt)}`, nameAt);
  } else {
    while (i < n && isNameCode(text.charCodeAt(i))) i++;
    if (i === nameAt) {
      const c = text[i];
      unexpected(i, c === '=' || c === '!' ? 'a matcher starts with a name' : 'a matcher starts with a name; one holding characters other than letters, digits, _ . [ ] is written in double quotes');
    }
    name = text.slice(nameAt, i);
    const c = text.charCodeAt(i);
    if (i < n && !isSpace(c) && c !== 61 /* = */ && c !== 33 /* ! */ && c !== 126 /* ~ */) {
      unexpected(i, 'a name holding characters other than letters, digits, _ . [ ] is written in double quotes');
    }
  }

  i = skipSpaces(text, i);
  let op: MatchOp | undefined;
  const c = text[i];
  const d = text[i + 1];
  if (c === '=') op = d === '~' ? '=~' : '=';
  else if (c === '!' && (d === '=' || d === '~')) op = d === '=' ? '!=' : '!~';
  if (op === undefined) return unexpected(i, 'expected an operator: =, !=, =~ or !~');
  i = skipSpaces(text, i + op.length);
  if (text.charCodeAt(i) !== 34) unexpected(i, 'expected a value in double quotes');
  const valueAt = i;
  const q = readQuoted(text, i, 'value');
  i = skipSpaces(text, q.end);
  if (i < n) unexpected(i, 'nothing may follow the value (one matcher per string)');

  try {
    return new Matcher(name, op, q.value);
  } catch (err) {
    // Only the regex can fail here: name and operator were checked above.
    throw new MatcherError(`${(err as Error).message.replace(/^invalid regular expression:/, `invalid regular expression at column ${column(valueAt)}:`)}`, column(valueAt));
  }
}

function skipSpaces(text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

function readQuoted(text: string, start: number, what: 'name' | 'value'): { value: string; end: number } {
  let out = '';
  let from = start + 1;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '"') return { value: out + text.slice(from, i), end: i + 1 };
    if (c !== '\\') continue;
    if (i + 1 >= text.length) break;
    const e = ESCAPES[text[i + 1]];
    out += text.slice(from, i) + (e ?? text.slice(i, i + 2));
    i++;
    from = i + 1;
  }
  throw new MatcherError(`unterminated quoted ${what} starting at column ${columnAt(text, start)}`, columnAt(text, start));
}

/** 1-based column of the UTF-16 offset i, counted in characters (code points), as an editor shows it. */
function columnAt(text: string, i: number): number {
  let col = 1;
  for (let k = 0; k < i && k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c >= 0xd800 && c <= 0xdbff && k + 1 < i) k++;
    col++;
  }
  return col;
}

function shownChar(text: string, i: number): string {
  const ch = String.fromCodePoint(text.codePointAt(i)!);
  return ch === "'" ? `"'"` : `'${JSON.stringify(ch).slice(1, -1)}'`;
}

/** RE2JS says `error parsing regexp: missing closing ): \`(abc\``; keep what is wrong, and the piece when it is not the whole. */
function regexProblem(err: unknown, pattern: string): string {
  const e = err as { error?: unknown; input?: unknown; message?: string };
  if (typeof e?.error !== 'string') return String(e?.message ?? err);
  return typeof e.input === 'string' && e.input !== '' && e.input !== pattern ? `${e.error} (\`${e.input}\`)` : e.error;
}
