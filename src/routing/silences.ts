/**
 * Silences, as Alertmanager's: created at run time over the API, each a list of matchers, a time
 * range, who and why, and optionally the output instances it applies to (all when absent). An
 * alert that satisfies every matcher of a silence in effect is still accepted, counted, and not
 * sent to the outputs the silence covers.
 *
 * Ingest asks a local cache, synchronously: no await and no allocation per alert while there are no
 * silences, and one pass over the silences otherwise, each silence's matchers evaluated at most
 * once per alert whatever the number of outputs. Where silences are kept (a file, Redis) is a
 * subclass's business; this file holds the model, the validation and the in-memory store.
 */
import { randomUUID } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { FalcoEvent } from '../event/falco-event.ts';
import type { Priority } from '../event/priority.ts';
import { parseDuration } from '../config/fields.ts';
import { MatcherError, SilenceError } from '../errors.ts';
import { RepeatLimiter } from '../log.ts';
import { matchesAll, matcherFromObject, parseMatcher, type Matcher } from './matcher.ts';

export { SilenceError };

/** A silence as stored (Redis, the file) and shown. Times are RFC 3339 (UTC, milliseconds). */
export interface Silence {
  id: string;
  /** Canonical matcher strings (Matcher.toString()); all must hold. Never empty. */
  matchers: string[];
  startsAt: string;
  endsAt: string;
  comment: string;
  createdBy: string;
  /** Output instance names it applies to; absent: every output. */
  outputs?: string[];
  createdAt: string;
  updatedAt: string;
}

export type SilenceState = 'pending' | 'active' | 'expired';

/** The API's view: the silence, its state now, and how many alerts it kept from each output. */
export interface SilenceView extends Silence {
  status: { state: SilenceState };
  silenced: Record<string, number>;
}

/** What a valid create request asks for (times in epoch ms). */
export interface SilenceRequest {
  matchers: string[];
  startsAt: number;
  endsAt: number;
  comment: string;
  createdBy: string;
  outputs?: string[];
}

// Limits of one request, and of the store. Ingest runs every silence in effect against every
// alert, so their number is bounded; the rest keeps one bad client from filling memory or Redis.
export const SILENCE_LIMITS = {
  /** Body of POST /api/v1/silences, in bytes. */
  bodyBytes: 64 * 1024,
  matchers: 64,
  matcherChars: 4096,
  commentChars: 10_000,
  createdByChars: 1000,
  /** endsAt − startsAt, and how far ahead startsAt may be. */
  maxLengthMs: 365 * 86_400_000,
  /** Silences pending or active at once. */
  notExpired: 1000,
  /**
   * Silences kept, expired included. Create-and-expire churn would otherwise pile up expired ones
   * for silences.retention, and every change makes every replica re-read the whole set. Beyond
   * it a create removes the oldest expired ones first (there are always some: notExpired is far
   * lower), rather than refusing: an operator silencing a flood must not be told to wait.
   */
  kept: 10_000,
} as const;

const FIELDS = ['matchers', 'startsAt', 'endsAt', 'duration', 'comment', 'createdBy', 'outputs'];
const EXAMPLE = '{"matchers": ["rule=\\"Terminal shell in container\\""], "duration": "2h", "comment": "why", "createdBy": "who"}';
/** Reads "" everywhere, as a missing field does: a matcher that holds on it holds on alerts that lack the field. */
const EMPTY_EVENT: FalcoEvent = { uuid: '', output: '', priority: '' as Priority, rule: '', time: '', output_fields: {}, source: '', tags: [], hostname: '' };

// ---------------------------------------------------------------------------------------------
// Validation

/** Checks a create request's body (parsed JSON, untrusted). Throws SilenceError with a message for the client. */
export function parseSilenceRequest(body: unknown, now: number, outputs: readonly string[]): SilenceRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new SilenceError(`the body must be a JSON object such as ${EXAMPLE}, not ${describe(body)}`);
  const b = body as Record<string, unknown>;
  if (Object.hasOwn(b, 'id')) throw new SilenceError('"id": a silence cannot be changed; create a new one and expire the old one (DELETE /api/v1/silences/<id>)');
  const unknown = Object.keys(b).filter((k) => !FIELDS.includes(k));
  if (unknown.length > 0) throw new SilenceError(`unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; the fields are ${FIELDS.join(', ')}`);

  const matchers = parseMatchers(b.matchers);

  const start = Math.max(b.startsAt === undefined ? now : parseTime(b.startsAt, 'startsAt'), now); // a start in the past means now, as Alertmanager
  if (start - now > SILENCE_LIMITS.maxLengthMs) throw new SilenceError('startsAt: at most 365 days ahead');
  if (b.endsAt !== undefined && b.duration !== undefined) throw new SilenceError('give endsAt or duration, not both');
  let end: number;
  if (b.duration !== undefined) {
    if (typeof b.duration !== 'string') throw new SilenceError(`duration: must be a string such as "2h", "30m" or "500ms", not ${describe(b.duration)}`);
    const ms = parseDuration(b.duration);
    if (ms === undefined) throw new SilenceError(`duration: ${JSON.stringify(b.duration)} is not a duration; write e.g. 2h, 30m, 500ms or 7d`);
    if (ms <= 0) throw new SilenceError('duration: must be more than 0');
    end = start + ms;
  } else if (b.endsAt !== undefined) {
    end = parseTime(b.endsAt, 'endsAt');
    if (end <= now) throw new SilenceError(`endsAt: ${b.endsAt as string} is in the past`);
    if (end <= start) throw new SilenceError(`endsAt (${b.endsAt as string}) must be after startsAt (${b.startsAt as string})`);
  } else {
    throw new SilenceError('endsAt or duration is required: when the silence ends (e.g. "duration": "2h")');
  }
  if (end - start > SILENCE_LIMITS.maxLengthMs) throw new SilenceError(`a silence lasts at most 365 days (endsAt − startsAt); this one lasts ${Math.ceil((end - start) / 86_400_000)} days`);

  const comment = text(b.comment, 'comment', SILENCE_LIMITS.commentChars, 'why the alerts are silenced');
  const createdBy = text(b.createdBy, 'createdBy', SILENCE_LIMITS.createdByChars, 'who silences them');

  let only: string[] | undefined;
  if (b.outputs !== undefined) {
    if (!Array.isArray(b.outputs) || b.outputs.some((o) => typeof o !== 'string')) throw new SilenceError(`outputs: must be a list of output names, not ${describe(b.outputs)}`);
    if (b.outputs.length === 0) throw new SilenceError('outputs: must name at least one output; leave it out to silence every output');
    only = [...new Set(b.outputs as string[])];
    const missing = only.filter((o) => !outputs.includes(o));
    if (missing.length > 0) {
      throw new SilenceError(`outputs: no output named ${missing.slice(0, 10).map((o) => JSON.stringify(o.slice(0, 100))).join(', ')}; the outputs are ${outputs.join(', ')}`);
    }
  }
  return { matchers, startsAt: start, endsAt: end, comment, createdBy, ...(only ? { outputs: only } : {}) };
}

function parseMatchers(raw: unknown): string[] {
  if (raw === undefined) throw new SilenceError('matchers: required; a silence without matchers would silence every alert');
  if (!Array.isArray(raw)) throw new SilenceError(`matchers: must be a list of matchers such as ["rule=\\"Terminal shell in container\\""], not ${describe(raw)}`);
  if (raw.length === 0) throw new SilenceError('matchers: must list at least one matcher; a silence without matchers would silence every alert');
  if (raw.length > SILENCE_LIMITS.matchers) throw new SilenceError(`matchers: at most ${SILENCE_LIMITS.matchers}`);
  const parsed = raw.map((m: unknown, i) => parseOne(m, i));
  // Alertmanager's rule: matchers that all hold on "" would also silence every alert lacking the fields they name.
  if (parsed.every((m) => m.matches(EMPTY_EVENT))) {
    throw new SilenceError('matchers: at least one matcher must not match an empty value, as in Alertmanager (these would also silence every alert that lacks the fields they name); add one such as rule="…"');
  }
  return parsed.map((m) => m.toString());
}

function parseOne(m: unknown, i: number): Matcher {
  const where = `matchers[${i}]`;
  if (typeof m === 'string') {
    if (m.length > SILENCE_LIMITS.matcherChars) throw new SilenceError(`${where}: at most ${SILENCE_LIMITS.matcherChars} characters`, { matcher: i });
    try {
      return parseMatcher(m);
    } catch (err) {
      if (!(err instanceof MatcherError)) throw err;
      const shown = m.length > 200 ? `${m.slice(0, 200)}…` : m;
      throw new SilenceError(`${where} \`${shown}\`: ${err.message}`, { matcher: i, column: err.column });
    }
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) {
    throw new SilenceError(`${where}: must be a string such as rule="Terminal shell in container" or an object {"name": …, "value": …, "isRegex": false, "isEqual": true}, not ${describe(m)}`, { matcher: i });
  }
  const extra = Object.keys(m).filter((k) => !['name', 'value', 'isRegex', 'isEqual'].includes(k));
  if (extra.length > 0) throw new SilenceError(`${where}: unknown field ${JSON.stringify(extra[0])}; a matcher object has name, value, isRegex, isEqual`, { matcher: i });
  const o = m as { name: string; value: string };
  if ((typeof o.name === 'string' && o.name.length > SILENCE_LIMITS.matcherChars) || (typeof o.value === 'string' && o.value.length > SILENCE_LIMITS.matcherChars)) {
    throw new SilenceError(`${where}: name and value have at most ${SILENCE_LIMITS.matcherChars} characters`, { matcher: i });
  }
  try {
    return matcherFromObject(o);
  } catch (err) {
    if (!(err instanceof MatcherError)) throw err;
    throw new SilenceError(`${where}: ${err.message}`, { matcher: i });
  }
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

function parseTime(v: unknown, field: string): number {
  const hint = `${field}: must be an RFC 3339 time such as "2026-11-29T18:00:00Z"`;
  if (typeof v !== 'string') throw new SilenceError(`${hint}, not ${describe(v)}`);
  const ms = RFC3339.test(v) ? Date.parse(v) : NaN;
  // Date.parse accepts 2026-02-30 and rolls it over: a time that does not write back is refused.
  if (Number.isNaN(ms) || !sameCalendarDay(v, ms)) throw new SilenceError(`${hint}; ${JSON.stringify(v.slice(0, 100))} is not one`);
  return ms;
}

/** The date part of v names the day the parsed instant falls on, in v's own offset. */
function sameCalendarDay(v: string, ms: number): boolean {
  const zone = /([Zz]|[+-]\d{2}:\d{2})$/.exec(v)![1];
  const offset = zone === 'Z' || zone === 'z' ? 0 : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  return new Date(ms + offset * 60_000).toISOString().slice(0, 10) === v.slice(0, 10);
}

function text(v: unknown, field: string, max: number, what: string): string {
  if (v === undefined || v === '') throw new SilenceError(`${field}: required (${what})`);
  if (typeof v !== 'string') throw new SilenceError(`${field}: must be a string, not ${describe(v)}`);
  if (v.trim() === '') throw new SilenceError(`${field}: required (${what})`);
  if (v.length > max) throw new SilenceError(`${field}: at most ${max} characters`);
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return 'a string';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v).slice(0, 40)}`;
}

/** A stored silence read back (file, Redis): throws an Error saying what is wrong with it. */
export function decodeSilence(raw: unknown): Silence {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('not an object');
  const r = raw as Record<string, unknown>;
  const str = (k: string) => {
    if (typeof r[k] !== 'string') throw new Error(`"${k}" must be a string`);
    return r[k] as string;
  };
  const time = (k: string) => {
    const s = str(k);
    if (Number.isNaN(Date.parse(s))) throw new Error(`"${k}" is not a time`);
    return s;
  };
  const id = str('id');
  if (id === '') throw new Error('"id" is empty');
  if (!Array.isArray(r.matchers) || r.matchers.length === 0 || r.matchers.some((m) => typeof m !== 'string')) throw new Error('"matchers" must be a non-empty list of strings');
  for (const m of r.matchers as string[]) {
    try {
      parseMatcher(m);
    } catch (err) {
      throw new Error(`matcher \`${m.slice(0, 200)}\`: ${(err as Error).message}`);
    }
  }
  if (r.outputs !== undefined && (!Array.isArray(r.outputs) || r.outputs.some((o) => typeof o !== 'string'))) throw new Error('"outputs" must be a list of strings');
  const s: Silence = {
    id,
    matchers: [...(r.matchers as string[])],
    startsAt: time('startsAt'),
    endsAt: time('endsAt'),
    comment: str('comment'),
    createdBy: str('createdBy'),
    createdAt: time('createdAt'),
    updatedAt: time('updatedAt'),
  };
  if (r.outputs !== undefined) s.outputs = [...(r.outputs as string[])];
  return s;
}

export function stateOf(s: Silence, now: number): SilenceState {
  return now < Date.parse(s.startsAt) ? 'pending' : now < Date.parse(s.endsAt) ? 'active' : 'expired';
}

/** A new silence from a valid request. */
export function newSilence(req: SilenceRequest, now: number): Silence {
  const at = new Date(now).toISOString();
  const s: Silence = {
    id: randomUUID(),
    matchers: req.matchers,
    startsAt: new Date(req.startsAt).toISOString(),
    endsAt: new Date(req.endsAt).toISOString(),
    comment: req.comment,
    createdBy: req.createdBy,
    createdAt: at,
    updatedAt: at,
  };
  if (req.outputs) s.outputs = req.outputs;
  return s;
}

/** The silence ended now (a pending one never starts), or undefined when it has already ended. */
export function expired(s: Silence, now: number): Silence | undefined {
  if (stateOf(s, now) === 'expired') return undefined;
  const at = new Date(now).toISOString();
  return { ...s, startsAt: stateOf(s, now) === 'pending' ? at : s.startsAt, endsAt: at, updatedAt: at };
}

/** Active first (ending soonest), then pending (starting soonest), then expired (latest first), as Alertmanager lists them. */
export function sortViews(views: SilenceView[]): SilenceView[] {
  const rank = { active: 0, pending: 1, expired: 2 } as const;
  return views.sort((a, b) => {
    const r = rank[a.status.state] - rank[b.status.state];
    if (r !== 0) return r;
    if (a.status.state === 'active') return cmp(a.endsAt, b.endsAt);
    if (a.status.state === 'pending') return cmp(a.startsAt, b.startsAt);
    return cmp(b.endsAt, a.endsAt);
  });
}

// Parsed once per silence object: rebuilding the cache re-reads every silence, and Date.parse was
// most of the cost (1,000 creations, each rebuilding the cache: 1.15 s before, 0.25 s after).
const parsedTimes = new WeakMap<Silence, { start: number; end: number }>();

function timesOf(s: Silence): { start: number; end: number } {
  let t = parsedTimes.get(s);
  if (!t) parsedTimes.set(s, (t = { start: Date.parse(s.startsAt), end: Date.parse(s.endsAt) }));
  return t;
}

/** RFC 3339 times in UTC with milliseconds compare as text. */
const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);

// ---------------------------------------------------------------------------------------------
// The store

export interface SilenceStoreOptions {
  /** Expired silences are removed this long after they end (silences.retention). */
  retentionMs: number;
  logger: Logger;
  /** For tests; Date.now by default. */
  now?: () => number;
  /** Loads what is stored and never writes nor polls (route-test). */
  readOnly?: boolean;
}

/** A silence compiled for ingest. */
interface Hot {
  silence: Silence;
  start: number;
  end: number;
  outputs: ReadonlySet<string> | undefined;
  matchers: Matcher[];
}

type Counts = Map<string, Map<string, number>>;

const MEMO_UNKNOWN = 0;
const MEMO_HOLDS = 1;
const MEMO_FAILS = 2;

export abstract class SilenceStore {
  abstract readonly kind: 'memory' | 'redis';
  /** The store's clock (Date.now unless a test gives one); the API validates against it. */
  readonly now: () => number;
  protected readonly logger: Logger;
  protected readonly repeats: RepeatLimiter;
  protected readonly retentionMs: number;
  protected readonly readOnly: boolean;

  /** Every silence known, expired ones included, for states and limits; `#times` their start and end (ms), pairwise. */
  #all: readonly Silence[] = [];
  #times = new Float64Array(0);
  /** Those not yet ended, oldest first: the only list ingest reads. */
  #hot: Hot[] = [];
  // Per-alert memo: which silences' matchers hold for the alert last asked about, so that asking
  // for each of its outputs evaluates every silence once.
  #memo = new Uint8Array(0);
  #memoEv: FalcoEvent | undefined;
  #memoNow = 0;
  /** Counts not yet written, per silence id and output; `#flushing` those being written. */
  readonly #pending: Counts = new Map();
  #flushing: Counts = new Map();
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> = Promise.resolve();

  constructor(o: SilenceStoreOptions) {
    this.now = o.now ?? Date.now;
    this.logger = o.logger;
    this.repeats = new RepeatLimiter(o.logger);
    this.retentionMs = o.retentionMs;
    this.readOnly = o.readOnly ?? false;
  }

  /** Loads what is stored; the router does not take alerts before this resolves. */
  async start(): Promise<void> {
    await this.load();
    if (this.readOnly) return;
    // Counts are written once a second, never per alert: a burst of silenced alerts costs the
    // backend one write per silence and output and second.
    this.#timer = setInterval(() => void this.tick(), 1000).unref();
  }

  /** Writes the counts still pending and stops the timers. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#ticking;
    await this.flushCounts();
  }

  // --- ingest (synchronous) ------------------------------------------------------------------

  /** The silence in effect whose matchers hold for this alert and that covers this output, if any. Routing skips it for "Test rule". */
  silencedBy(ev: FalcoEvent, output: string): Silence | undefined {
    return this.#hot.length === 0 ? undefined : this.#match(ev, output)?.silence;
  }

  /** Counts an alert the silence `id` kept from an output, once the alert is stored (written once a second). */
  count(id: string, output: string): void {
    // Absent only when the silence was removed (retention) since routing asked.
    const m = this.#pending.get(id);
    if (m) m.set(output, (m.get(output) ?? 0) + 1);
  }

  #match(ev: FalcoEvent, output: string): Hot | undefined {
    const hot = this.#hot;
    const memo = this.#memo;
    if (ev !== this.#memoEv) {
      this.#memoEv = ev;
      this.#memoNow = this.now();
      memo.fill(MEMO_UNKNOWN);
    }
    const now = this.#memoNow;
    for (let i = 0; i < hot.length; i++) {
      const h = hot[i];
      if (now < h.start || now >= h.end) continue;
      if (h.outputs !== undefined && !h.outputs.has(output)) continue;
      if (memo[i] === MEMO_UNKNOWN) memo[i] = matchesAll(h.matchers, ev) ? MEMO_HOLDS : MEMO_FAILS;
      if (memo[i] === MEMO_HOLDS) return h;
    }
    return undefined;
  }

  /** How many silences are in each state now (/ready, metrics). */
  states(): Record<SilenceState, number> {
    const now = this.now();
    const n = { active: 0, pending: 0, expired: 0 };
    const t = this.#times;
    for (let i = 0; i < t.length; i += 2) {
      if (now < t[i]) n.pending++;
      else if (now < t[i + 1]) n.active++;
      else n.expired++;
    }
    return n;
  }

  // --- for the backends ------------------------------------------------------------------------

  /** Replaces what ingest reads. A silence whose matchers no longer parse is skipped, with a log line. */
  protected use(silences: readonly Silence[]): void {
    const now = this.now();
    // A silence's matchers never change (only its times do): compiled once, not at every rebuild.
    const compiled = new Map(this.#hot.map((h) => [h.silence.id, h.matchers]));
    const hot: Hot[] = [];
    const times = new Float64Array(silences.length * 2);
    for (const [i, s] of silences.entries()) {
      const { start, end } = timesOf(s);
      times[2 * i] = start;
      times[2 * i + 1] = end;
      if (end <= now) continue;
      let matchers = compiled.get(s.id);
      if (!matchers) {
        try {
          matchers = s.matchers.map((m) => parseMatcher(m));
        } catch (err) {
          this.repeats.log('warn', { silence: s.id }, `silence ${s.id} skipped: ${(err as Error).message}`);
          continue;
        }
      }
      if (!this.#pending.has(s.id)) this.#pending.set(s.id, new Map());
      hot.push({ silence: s, start, end, outputs: s.outputs ? new Set(s.outputs) : undefined, matchers });
    }
    // Oldest first (a stable sort: the order given breaks ties), so an alert two silences cover is counted for the older.
    hot.sort((a, b) => cmp(a.silence.createdAt, b.silence.createdAt));
    this.#all = [...silences];
    this.#times = times;
    // Counts of silences gone for good (purged) have nowhere to go.
    const ids = new Set(silences.map((s) => s.id));
    for (const id of this.#pending.keys()) if (!ids.has(id)) this.#pending.delete(id);
    this.#hot = hot;
    this.#memo = new Uint8Array(hot.length);
    this.#memoEv = undefined;
  }

  protected get all(): readonly Silence[] {
    return this.#all;
  }

  /** Counts of this silence not yet in the backend (pending or being written). */
  protected unwritten(id: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const m of [this.#pending.get(id), this.#flushing.get(id)]) for (const [o, n] of m ?? []) out[o] = (out[o] ?? 0) + n;
    return out;
  }

  protected view(s: Silence, written: Record<string, number>, now = this.now()): SilenceView {
    const silenced: Record<string, number> = { ...written };
    for (const [o, n] of Object.entries(this.unwritten(s.id))) silenced[o] = (silenced[o] ?? 0) + n;
    const { id, matchers, startsAt, endsAt, comment, createdBy, outputs, createdAt, updatedAt } = s;
    return { id, status: { state: stateOf(s, now) }, matchers, startsAt, endsAt, comment, createdBy, ...(outputs ? { outputs } : {}), createdAt, updatedAt, silenced };
  }

  /**
   * The audit line of a change once it is made: who did what. createdBy is what the client says,
   * `client` the address it came from. Pino escapes every string, so operator text cannot break
   * the line or forge another; the comment is left out (it can be long and sensitive; GET shows it).
   */
  protected audit(action: 'created' | 'expired', s: Silence, client: string | undefined): void {
    const { id, createdBy, matchers, outputs, startsAt, endsAt } = s;
    this.logger.info({ silence: id, createdBy, matchers, outputs: outputs ?? 'all', startsAt, endsAt, ...(client ? { client } : {}) }, `silence ${action}`);
  }

  /** The expired silences a create removes to keep SILENCE_LIMITS.kept: those that ended first. */
  protected overflow(): Silence[] {
    const excess = this.#all.length + 1 - SILENCE_LIMITS.kept;
    if (excess <= 0) return [];
    const now = this.now();
    return this.#all
      .filter((s) => timesOf(s).end <= now)
      .sort((a, b) => cmp(a.endsAt, b.endsAt))
      .slice(0, excess);
  }

  /** Refuses a new silence beyond the bound of silences pending or active. */
  protected checkRoom(): void {
    const { active, pending } = this.states();
    if (active + pending >= SILENCE_LIMITS.notExpired) {
      throw new SilenceError(`there are already ${active + pending} silences active or pending (at most ${SILENCE_LIMITS.notExpired}); expire some first`);
    }
  }

  /** Once a second: counts to the backend, ended silences out of ingest's list, the backend's own work. */
  protected tick(): Promise<void> {
    this.#ticking = this.#ticking
      .then(async () => {
        const now = this.now();
        if (this.#hot.some((h) => h.end <= now)) this.use(this.#all);
        await this.flushCounts();
        await this.housekeeping(now);
      })
      .catch((err: Error) => this.repeats.log('error', { err: err.message }, `silences: ${err.message}`));
    return this.#ticking;
  }

  /** Hands the pending counts to the backend; on failure they stay pending for the next try. */
  protected async flushCounts(): Promise<void> {
    const batch: Counts = new Map();
    for (const [id, m] of this.#pending) {
      if (m.size === 0) continue;
      batch.set(id, new Map(m));
      m.clear();
    }
    if (batch.size === 0) return;
    this.#flushing = batch;
    try {
      await this.writeCounts(batch);
    } catch (err) {
      for (const [id, m] of batch) {
        const into = this.#pending.get(id);
        if (into) for (const [o, n] of m) into.set(o, (into.get(o) ?? 0) + n);
      }
      this.repeats.log('warn', { err: (err as Error).message }, `silence counts not written, kept for the next try: ${(err as Error).message}`);
    } finally {
      this.#flushing = new Map();
    }
  }

  protected abstract load(): Promise<void>;
  protected abstract writeCounts(batch: ReadonlyMap<string, ReadonlyMap<string, number>>): Promise<void>;
  protected abstract housekeeping(now: number): Promise<void>;

  abstract list(): Promise<SilenceView[]>;
  abstract get(id: string): Promise<SilenceView | undefined>;
  /** Stores a new silence; ingest on this process applies it before this resolves. `client`: the requester's address, for the audit line. */
  abstract create(req: SilenceRequest, client?: string): Promise<SilenceView>;
  /** Ends a silence now; an expired one stays as it is (and is not logged again). Undefined for an unknown id. */
  abstract expire(id: string, client?: string): Promise<SilenceView | undefined>;
}

// ---------------------------------------------------------------------------------------------
// Memory driver: in the process, and in a file when silences.path is set

interface FileSilence extends Silence {
  silenced: Record<string, number>;
}

const PURGE_EVERY_MS = 60_000;

export class MemorySilenceStore extends SilenceStore {
  readonly kind = 'memory' as const;
  readonly #path: string;
  readonly #records = new Map<string, FileSilence>();
  #purgedAt = 0;
  #writing: Promise<void> = Promise.resolve();
  #queued: Promise<void> | undefined;
  #dirty = false;

  constructor(o: SilenceStoreOptions & { path: string }) {
    super(o);
    this.#path = o.path;
  }

  protected async load(): Promise<void> {
    if (this.#path === '') return;
    let text: string | undefined;
    try {
      text = readFileSync(this.#path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`silences.path: cannot read ${this.#path}: ${(err as Error).message}`);
    }
    if (text !== undefined) {
      const bad = (why: string) => new Error(`silences.path: ${this.#path} is not a valid silences file (${why}); fix it, or move it away to start without its silences`);
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch (err) {
        throw bad((err as Error).message);
      }
      const list = (doc as { silences?: unknown } | null)?.silences;
      if (!Array.isArray(list)) throw bad('no "silences" list');
      list.forEach((raw, i) => {
        let s: Silence;
        try {
          s = decodeSilence(raw);
        } catch (err) {
          throw bad(`silences[${i}]: ${(err as Error).message}`);
        }
        const counts = (raw as { silenced?: unknown }).silenced;
        const silenced: Record<string, number> = {};
        if (counts && typeof counts === 'object') for (const [o, n] of Object.entries(counts)) if (typeof n === 'number' && n > 0) silenced[o] = n;
        this.#records.set(s.id, { ...s, silenced });
      });
    }
    this.#purge(this.now());
    this.use([...this.#records.values()]);
    // Written at once: a directory the router cannot write to is found at start, not at the first silence.
    if (!this.readOnly) await this.#save();
  }

  async list(): Promise<SilenceView[]> {
    const now = this.now();
    return sortViews([...this.#records.values()].map((r) => this.view(r, r.silenced, now)));
  }

  async get(id: string): Promise<SilenceView | undefined> {
    const r = this.#records.get(id);
    return r && this.view(r, r.silenced);
  }

  async create(req: SilenceRequest, client?: string): Promise<SilenceView> {
    this.checkRoom();
    const purged = this.overflow().map((x) => this.#records.get(x.id)!);
    for (const r of purged) this.#records.delete(r.id);
    const s = { ...newSilence(req, this.now()), silenced: {} };
    this.#records.set(s.id, s);
    this.use([...this.#records.values()]);
    try {
      await this.#save();
    } catch (err) {
      this.#records.delete(s.id);
      for (const r of purged) this.#records.set(r.id, r);
      this.use([...this.#records.values()]);
      throw err;
    }
    this.audit('created', s, client);
    return this.view(s, s.silenced);
  }

  async expire(id: string, client?: string): Promise<SilenceView | undefined> {
    const r = this.#records.get(id);
    if (!r) return undefined;
    const ended = expired(r, this.now());
    if (ended) {
      const next = { ...ended, silenced: r.silenced };
      this.#records.set(id, next);
      this.use([...this.#records.values()]);
      this.audit('expired', next, client);
      // Ended here whatever the write does: an error tells the client it may be back after a restart.
      await this.#save();
      return this.view(next, next.silenced);
    }
    return this.view(r, r.silenced);
  }

  protected async writeCounts(batch: ReadonlyMap<string, ReadonlyMap<string, number>>): Promise<void> {
    for (const [id, m] of batch) {
      const r = this.#records.get(id);
      if (!r) continue;
      for (const [o, n] of m) r.silenced[o] = (r.silenced[o] ?? 0) + n;
    }
    this.#dirty = true;
  }

  protected async housekeeping(now: number): Promise<void> {
    if (now - this.#purgedAt >= PURGE_EVERY_MS && this.#purge(now)) {
      this.use([...this.#records.values()]);
      this.#dirty = true;
    }
    if (this.#dirty) await this.#save().catch((err: Error) => this.repeats.log('error', { err: err.message }, err.message));
  }

  override async close(): Promise<void> {
    await super.close();
    if (this.#dirty) await this.#save().catch((err: Error) => this.logger.error({ err: err.message }, err.message));
  }

  /** Removes silences ended longer than the retention ago; true when some were. */
  #purge(now: number): boolean {
    this.#purgedAt = now;
    let removed = false;
    for (const [id, r] of this.#records) {
      if (Date.parse(r.endsAt) + this.retentionMs <= now) {
        this.#records.delete(id);
        removed = true;
      }
    }
    return removed;
  }

  /**
   * Writes the file: a temporary file, synced, then renamed over it, so a crash leaves the old file
   * or the new one, never half of one. One write at a time; changes made while one runs share the
   * next, which reads the records when it starts.
   */
  #save(): Promise<void> {
    if (this.#path === '') return Promise.resolve();
    if (this.#queued) return this.#queued;
    const run = this.#writing
      .catch(() => {})
      .then(() => {
        this.#queued = undefined;
        this.#dirty = false;
        return writeAtomic(this.#path, JSON.stringify({ silences: [...this.#records.values()] }, null, 1) + '\n').catch((err: Error) => {
          this.#dirty = true;
          throw new Error(`silences.path: cannot write ${this.#path}: ${err.message}`);
        });
      });
    this.#queued = run;
    this.#writing = run;
    return run;
  }
}

async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const f = await open(tmp, 'w', 0o600);
  try {
    await f.writeFile(data);
    await f.sync();
  } finally {
    await f.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  // The rename itself lasts only once the directory is synced.
  const dir = await open(dirname(path), 'r').catch(() => undefined);
  await dir?.sync().catch(() => {});
  await dir?.close();
}
