/**
 * Keeps an output instance's secrets out of every text the router writes or serves about it: error
 * messages (and so logs, dead-letter reasons, /ready), and whatever its adapter logs. Applied once,
 * by the pipeline, for every output type, from the settings the type declares secret: a remote
 * server that echoes the request URL, a header or a key in its error body is covered too.
 *
 * For a URL, the whole URL becomes `scheme://host/***` and every part that may be the credential
 * (path, each path segment and query value long enough to be a token, user and password, in plain,
 * percent-encoded and JSON-escaped forms) becomes `***`. For a header map, each value, and the token
 * after a scheme word (`Bearer xyz` → also `xyz`).
 */

/** Shorter values are not redacted inside other text: they would blank ordinary words and digits. */
const MIN_SECRET = 4;
/** Parts derived from a secret (a path segment, a query value) must be this long to count as one. */
const MIN_PART = 8;
const HIDDEN = '***';
/** The shortest start of a secret redacted at the end of a text. */
const MIN_TAIL = 6;
/** Error texts are cut to this many characters, after redaction. */
const MAX_MESSAGE = 1000;

export class Redactor {
  /** Longest first, so a URL is replaced before its path, and its path before a segment. */
  readonly #pairs: Array<[string, string]>;

  constructor(values: readonly unknown[]) {
    const pairs = new Map<string, string>();
    const add = (secret: string, replacement = HIDDEN, min = MIN_SECRET) => {
      if (secret.length < min) return;
      for (const form of [secret, safeEncode(secret), secret.replaceAll('/', '\\/')]) if (!pairs.has(form)) pairs.set(form, replacement);
    };
    for (const v of values.flatMap(flatten)) {
      const url = parseUrl(v);
      if (url) {
        add(v, redactUrl(v));
        add(`${url.host}${url.pathname}${url.search}`, `${url.host}/${HIDDEN}`);
        if (url.pathname.length > 1) add(url.pathname + url.search, `/${HIDDEN}`), add(url.pathname, `/${HIDDEN}`);
        for (const seg of url.pathname.split('/')) add(safeDecode(seg), HIDDEN, MIN_PART), add(seg, HIDDEN, MIN_PART);
        if (url.search) add(url.search.slice(1));
        for (const [, value] of url.searchParams) add(value, HIDDEN, MIN_PART);
        add(safeDecode(url.username), HIDDEN, MIN_PART);
        add(safeDecode(url.password));
      } else {
        add(v);
        const token = /^\S+\s+(\S+)$/.exec(v)?.[1];
        if (token) add(token, HIDDEN, MIN_PART);
      }
    }
    this.#pairs = [...pairs].sort((a, b) => b[0].length - a[0].length);
  }

  get empty(): boolean {
    return this.#pairs.length === 0;
  }

  text(s: string): string {
    for (const [secret, replacement] of this.#pairs) if (s.includes(secret)) s = s.split(secret).join(replacement);
    // A text someone cut short may end with the start of a secret (a token, a path segment; a URL's
    // scheme and host are not secret, and its token is among its segments).
    for (const [secret, replacement] of this.#pairs) {
      if (replacement !== HIDDEN) continue;
      for (let n = Math.min(secret.length - 1, s.length); n >= MIN_TAIL; n--) {
        if (s.endsWith(secret.slice(0, n))) {
          s = `${s.slice(0, s.length - n)}${HIDDEN}`;
          break;
        }
      }
    }
    return s;
  }

  /** An error text as it may be logged, stored and served: redacted, then (never before) shortened. */
  message(s: string): string {
    const text = this.text(s);
    return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text;
  }

  /** A copy of a log object with every string redacted (keys too: an echoed header may be one). */
  value(v: unknown, depth = 0): unknown {
    if (typeof v === 'string') return this.text(v);
    if (v === null || typeof v !== 'object' || depth > 8) return v;
    if (Array.isArray(v)) return v.map((x) => this.value(x, depth + 1));
    if (v instanceof Error) return this.text(v.message);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[this.text(k)] = this.value(x, depth + 1);
    return out;
  }
}

/** Keeps scheme, host and port; path, query and credentials may carry tokens (Slack URLs do). */
export function redactUrl(url: string): string {
  const u = parseUrl(url);
  if (!u) return HIDDEN;
  const hidden = u.pathname !== '/' || u.search !== '' || u.username !== '' ? `/${HIDDEN}` : '/';
  return `${u.protocol}//${u.host}${hidden}`;
}

function flatten(v: unknown): string[] {
  if (typeof v === 'string') return v === '' ? [] : [v];
  if (v === null || typeof v !== 'object') return [];
  return Object.values(v).flatMap(flatten);
}

function parseUrl(v: string): URL | undefined {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return undefined;
  try {
    return new URL(v);
  } catch {
    return undefined;
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function safeEncode(s: string): string {
  return encodeURIComponent(s);
}
