/**
 * Slack (Incoming Webhook): falcosidekick's attachment message (compat §3.3, §4.1), byte for byte,
 * plus flood control: the delivery worker sends at most `delivery.ratelimit` messages a second and
 * hands the events beyond `delivery.summarizeabove` to sendSummary(), which posts one message with
 * a "N more alerts for rule X in the last M minutes" attachment per rule.
 *
 * Sent with undici (src/http/client.ts), not @slack/webhook: see the note above `postJson`.
 */
import { z } from 'zod';
import type { Agent } from 'undici';
import type { Logger } from 'pino';
import { New } from '@mdfriday/text-template';
import type { OutputType, Output, StoredEvent, SendContext, FalcoEvent } from './types.ts';
import { OutputError } from './types.ts';
import { createAgent, httpSend, assertOk, redactUrl, redactText } from '../src/http/client.ts';
import { httpUrl, bool } from '../src/config/fields.ts';
import { stringifyLossless, isLosslessNumber } from '../src/event/json.ts';
import { priorityLevel, priorityName } from '../src/event/priority.ts';
import { eventTimeMs } from '../src/event/falco-event.ts';

export const DEFAULT_ICON = 'https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick_color.png';
export const DEFAULT_FOOTER = 'https://github.com/falcosecurity/falcosidekick';
export const DEFAULT_USERNAME = 'Falcosidekick';

type OutputFormat = 'all' | 'text' | 'fields';

const schema = z.object({
  /** Enables the output; a secret (the path is the credential). */
  webhookurl: httpUrl,
  /** Overrides the webhook's channel; sent only when set. */
  channel: z.string().default(''),
  /** '' omits it (Slack then shows the webhook's own name). */
  username: z.string().default(DEFAULT_USERNAME),
  /** icon_url; '' omits it. */
  icon: z.string().default(DEFAULT_ICON),
  /** '' means falcosidekick's default footer: the footer cannot be removed, as in falcosidekick. */
  footer: z.string().default(DEFAULT_FOOTER),
  /** all: text and fields; text: the output line only; fields: the fields only. */
  outputformat: z
    .string()
    .default('all')
    .transform((v, ctx): OutputFormat => {
      const f = v.trim().toLowerCase();
      if (f === '') return 'all';
      if (f === 'all' || f === 'text' || f === 'fields') return f;
      const hint = f === 'field' ? ' (falcosidekick’s docs say "field", but only "fields" works there too)' : '';
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not an output format; use all, text or fields${hint}` });
      return z.NEVER;
    }),
  /** A Go text/template for the message's top line, e.g. `Rule: {{ .Rule }}`; '' for none. */
  messageformat: z
    .string()
    .default('')
    .superRefine((v, ctx) => {
      if (v === '') return;
      try {
        compileMessageFormat(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
  /** Not in falcosidekick: also show numeric and boolean output fields (as their exact text). */
  shownonstringfields: bool.default(false),
  checkcert: bool.default(true),
  mutualtls: bool.default(false),
});
export type SlackConfig = z.infer<typeof schema>;

// ---------------------------------------------------------------------------------------------
// The message
// ---------------------------------------------------------------------------------------------

/** Attachment colour by priority level (index = level), as falcosidekick's colour constants. */
const COLORS = ['', '#ccfff2', '#68c2ff', '#5bffb5', '#ffc700', '#e20b0b', '#ff5400', '#ff5400', '#e20b0b'];

export function priorityColor(priority: string): string {
  return COLORS[priorityLevel(priority)] ?? '';
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * An RFC 3339 time as Go's time.Time.String() prints it after time.Parse: `2001-01-01 01:10:00 +0000 UTC`,
 * `2023-03-03 03:03:03.000000003 +0000 UTC`, and `2019-05-17 17:31:56.5 +0200 +0200` for an offset
 * (an unnamed fixed zone; falcosidekick runs in UTC, so only a zero offset gets the name UTC).
 */
export function goTimeString(time: string): string {
  const m = RFC3339.exec(time);
  if (!m) return time;
  const [, date, clock, frac = '', zone] = m;
  const nanos = frac.slice(0, 9).replace(/0+$/, '');
  const z = zone.toUpperCase() === 'Z' || /^[+-]00:00$/.test(zone) ? '+0000 UTC' : `${zone.replace(':', '')} ${zone.replace(':', '')}`;
  return `${date} ${clock}${nanos ? '.' + nanos : ''} ${z}`;
}

interface Field {
  title: string;
  value: string;
  short: boolean;
}

const field = (title: string, value: string, short = true): Field => ({ title, value, short });

/** A field value shown when `shownonstringfields` is on: numbers keep their exact JSON text. */
function nonStringText(v: unknown): string | undefined {
  if (isLosslessNumber(v)) return String(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

function eventFields(ev: FalcoEvent, showNonString: boolean): Field[] {
  const fields = [field('rule', ev.rule), field('priority', ev.priority), field('source', ev.source)];
  if (ev.hostname !== '') fields.push(field('hostname', ev.hostname));
  if (ev.tags.length > 0) fields.push(field('tags', [...ev.tags].sort().join(', ')));
  for (const key of Object.keys(ev.output_fields).sort()) {
    const v = ev.output_fields[key];
    const text = typeof v === 'string' ? v : showNonString ? nonStringText(v) : undefined;
    if (text === undefined) continue;
    // falcosidekick counts runes: `len([]rune(v)) < 36`.
    fields.push(field(key, text, [...text].length < 36));
  }
  fields.push(field('time', goTimeString(ev.time), false));
  return fields;
}

interface Look {
  username: string;
  icon: string;
  channel: string;
  footer: string;
  outputformat: OutputFormat;
}

/** The top level, with falcosidekick's key order and its omitempty rules. */
function envelope(look: Look, text: string | undefined, attachments: unknown[]): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  if (text) p.text = text;
  if (look.username) p.username = look.username;
  if (look.icon) p.icon_url = look.icon;
  if (look.channel) p.channel = look.channel;
  p.attachments = attachments;
  return p;
}

/** falcosidekick's newSlackPayload(). `text` is the rendered messageformat, if any. */
export function slackPayload(ev: FalcoEvent, look: Look & { shownonstringfields: boolean }, text?: string): Record<string, unknown> {
  const withFields = look.outputformat !== 'text';
  const a: Record<string, unknown> = { fallback: ev.output, color: priorityColor(ev.priority) };
  if (look.outputformat !== 'fields' && ev.output !== '') a.text = ev.output;
  // outputformat text: Go's nil slice is encoded as "fields": null, and there is no footer.
  a.fields = withFields ? eventFields(ev, look.shownonstringfields) : null;
  if (withFields) a.footer = look.footer || DEFAULT_FOOTER;
  return envelope(look, text, [a]);
}

/** Rules beyond this many get one combined attachment (Slack shows at most 100 attachments). */
const MAX_SUMMARY_RULES = 20;

interface RuleGroup {
  rule: string;
  count: number;
  level: number;
  byPriority: Map<number, number>;
  hosts: Set<string>;
  first: string;
  last: string;
  firstMs: number;
  lastMs: number;
}

/** "in the last M minutes", M from the span of the events' own times (at least one minute). */
function lastMinutes(firstMs: number, lastMs: number): string {
  const span = Number.isFinite(firstMs) && Number.isFinite(lastMs) ? lastMs - firstMs : 0;
  const m = Math.max(1, Math.ceil(span / 60_000));
  return m === 1 ? 'in the last minute' : `in the last ${m} minutes`;
}

function summaryLine(count: number, what: string, g: { firstMs: number; lastMs: number }): string {
  return `${count} more alert${count === 1 ? '' : 's'} for ${what} ${lastMinutes(g.firstMs, g.lastMs)}`;
}

function listSome(values: Iterable<string>, max = 5): string {
  const all = [...values].sort();
  return all.length <= max ? all.join(', ') : `${all.slice(0, max).join(', ')} (+${all.length - max} more)`;
}

/**
 * One message for many events: an attachment per rule (most alerts first), coloured by the highest
 * priority seen. One POST, so a retry never posts a rule's summary twice.
 */
export function summaryPayload(events: readonly FalcoEvent[], look: Look): Record<string, unknown> {
  const groups = new Map<string, RuleGroup>();
  for (const ev of events) {
    const level = priorityLevel(ev.priority);
    const ms = eventTimeMs(ev.time);
    let g = groups.get(ev.rule);
    if (!g) {
      g = { rule: ev.rule, count: 0, level: 0, byPriority: new Map(), hosts: new Set(), first: ev.time, last: ev.time, firstMs: ms, lastMs: ms };
      groups.set(ev.rule, g);
    }
    g.count++;
    g.level = Math.max(g.level, level);
    g.byPriority.set(level, (g.byPriority.get(level) ?? 0) + 1);
    if (ev.hostname) g.hosts.add(ev.hostname);
    if (ms < g.firstMs) [g.firstMs, g.first] = [ms, ev.time];
    if (ms > g.lastMs) [g.lastMs, g.last] = [ms, ev.time];
  }
  const sorted = [...groups.values()].sort((a, b) => b.count - a.count || (a.rule < b.rule ? -1 : 1));
  const shown = sorted.length > MAX_SUMMARY_RULES ? sorted.slice(0, MAX_SUMMARY_RULES - 1) : sorted;
  const rest = sorted.slice(shown.length);
  const withFields = look.outputformat !== 'text';
  const footer = look.footer || DEFAULT_FOOTER;

  const attachments = shown.map((g) => {
    const line = summaryLine(g.count, `rule ${g.rule}`, g);
    const a: Record<string, unknown> = { fallback: line, color: COLORS[g.level] ?? '', text: line };
    if (withFields) {
      const priorities = [...g.byPriority.entries()].sort((x, y) => y[0] - x[0]).map(([lvl, n]) => `${priorityName(lvl)}: ${n}`);
      const fields = [field('rule', g.rule), field('priority', priorities.join(', '))];
      if (g.hosts.size > 0) fields.push(field(g.hosts.size === 1 ? 'hostname' : 'hostnames', listSome(g.hosts)));
      fields.push(field('first', goTimeString(g.first), false), field('last', goTimeString(g.last), false));
      a.fields = fields;
      a.footer = footer;
    } else {
      a.fields = null;
    }
    return a;
  });
  if (rest.length > 0) {
    const count = rest.reduce((n, g) => n + g.count, 0);
    const span = { firstMs: Math.min(...rest.map((g) => g.firstMs)), lastMs: Math.max(...rest.map((g) => g.lastMs)) };
    const line = summaryLine(count, `${rest.length} other rules`, span);
    const a: Record<string, unknown> = { fallback: line, color: COLORS[Math.max(...rest.map((g) => g.level))] ?? '', text: line };
    a.fields = withFields ? [field('rules', listSome(rest.map((g) => g.rule), 10), false)] : null;
    if (withFields) a.footer = footer;
    attachments.push(a);
  }
  const total = events.length;
  const text = `Flood control: ${total} alert${total === 1 ? '' : 's'} summarised instead of posted one by one (they still reached every other output)`;
  return envelope(look, text, attachments);
}

// ---------------------------------------------------------------------------------------------
// messageformat: Go text/template with FalcoPayload as the dot
// ---------------------------------------------------------------------------------------------

/** What Go prints for a missing map key or a nil value: `<no value>`. Falsy in if/with/and/or/not. */
class NoValue {
  String(): string {
    return '<no value>';
  }
  toString(): string {
    return '<no value>';
  }
}
const NO_VALUE = new NoValue();

/** Go's truth (text/template isTrue): zero values, empty collections and nil are false. */
function truth(v: unknown): boolean {
  if (v === null || v === undefined || v === NO_VALUE) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return v !== '';
  if (isLosslessNumber(v)) return Number(v.value) !== 0;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/**
 * Overrides of the engine's builtins with Go's semantics: `index` on a map gives `<no value>` for a
 * missing key (the engine gives ''), and `and`/`or`/`not` use Go's truth (so `or (index …) "n/a"` works).
 */
const GO_FUNCS = new Map<string, unknown>([
  [
    'index',
    (item: unknown, ...keys: unknown[]) => {
      let v: unknown = item;
      for (const k of keys) {
        if (v === null || v === undefined || v === NO_VALUE) throw new Error('index of untyped nil');
        if (Array.isArray(v) || typeof v === 'string') {
          const i = Number(k);
          if (!Number.isInteger(i)) throw new Error(`cannot index slice/array with ${String(k)}`);
          if (i < 0 || i >= v.length) throw new Error(`index out of range: ${i}`);
          v = typeof v === 'string' ? v.charCodeAt(i) : v[i];
        } else if (typeof v === 'object') {
          const key = String(k);
          v = Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined;
          if (v === undefined || v === null) v = NO_VALUE;
        } else {
          throw new Error(`can't index item of type ${typeof v}`);
        }
      }
      return v;
    },
  ],
  ['or', (...args: unknown[]) => args.find(truth) ?? args[args.length - 1]],
  ['and', (...args: unknown[]) => args.find((a) => !truth(a)) ?? args[args.length - 1]],
  ['not', (v: unknown) => !truth(v)],
]);

/** Numbers as the template sees them: plain numbers when exact, else the LosslessNumber (prints its text). */
function templateValue(v: unknown): unknown {
  if (isLosslessNumber(v)) {
    const n = Number(v.value);
    return String(n) === v.value ? n : v;
  }
  return v;
}

/** output_fields as a Go map: `.OutputFields.key` and values that are null print `<no value>`. */
function goMap(fields: Record<string, unknown>): Record<string, unknown> {
  const target: Record<string, unknown> = {};
  for (const k of Object.keys(fields).sort()) target[k] = templateValue(fields[k]);
  return new Proxy(target, {
    get(t, key, receiver) {
      if (typeof key !== 'string' || key === 'then' || key in Object.prototype) return Reflect.get(t, key, receiver);
      return Object.hasOwn(t, key) ? (t[key] ?? NO_VALUE) : NO_VALUE;
    },
  });
}

/**
 * The dot: falcosidekick's FalcoPayload field names. A class, not a plain object, so that an unknown
 * field (`.rule`) is an execution error as in Go, not a silent blank.
 */
class FalcoPayloadData {
  readonly Output: string;
  readonly Priority: string;
  readonly Rule: string;
  readonly Time: string;
  readonly OutputFields: Record<string, unknown>;
  readonly Source: string;
  readonly Tags: string[];
  readonly Hostname: string;
  readonly UUID: string;
  constructor(ev: FalcoEvent) {
    this.Output = ev.output;
    this.Priority = ev.priority;
    this.Rule = ev.rule;
    this.Time = goTimeString(ev.time);
    this.OutputFields = goMap(ev.output_fields);
    this.Source = ev.source;
    this.Tags = [...ev.tags].sort(); // falcosidekick sorts them (in place) before the template runs
    this.Hostname = ev.hostname;
    this.UUID = ev.uuid;
  }
}

export interface MessageFormat {
  readonly source: string;
  render(ev: FalcoEvent): Promise<string>;
}

/** Parses a messageformat; throws with the parser's message when it is not a valid Go template. */
export function compileMessageFormat(source: string): MessageFormat {
  const [tmpl, err] = New('messageformat').Funcs(GO_FUNCS as Map<string, any>).Parse(source);
  if (err || !tmpl) throw new Error(`not a valid Go template: ${String(err?.message ?? err)}`);
  return {
    source,
    async render(ev) {
      const [out, execErr] = await tmpl.Execute(new FalcoPayloadData(ev));
      if (execErr) throw new Error(String((execErr as Error).message ?? execErr));
      return out;
    },
  };
}

/** A representative event, to try the template once at start. */
const SAMPLE_EVENT: FalcoEvent = {
  uuid: '00000000-0000-0000-0000-000000000000',
  output: '15:15:03.434319636: Warning Sensitive file opened for reading (file=/etc/shadow)',
  priority: 'Warning',
  rule: 'Read sensitive file untrusted',
  time: '2025-04-02T15:15:03.434319636Z',
  output_fields: { 'fd.name': '/etc/shadow', 'proc.name': 'cat' },
  source: 'syscall',
  tags: ['filesystem'],
  hostname: 'node-1',
};

// ---------------------------------------------------------------------------------------------
// The output
// ---------------------------------------------------------------------------------------------

const HEADERS = { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' };

class SlackOutput implements Output {
  readonly #agent: Agent;
  readonly #url: string;
  readonly #look: Look & { shownonstringfields: boolean };
  readonly #template?: MessageFormat;
  readonly #logger: Logger;
  readonly #debug: boolean;
  #templateWarnedAt = 0;
  #templateFailures = 0;

  constructor(
    readonly name: string,
    config: SlackConfig,
    agent: Agent,
    logger: Logger,
    debug: boolean,
  ) {
    this.#agent = agent;
    this.#url = config.webhookurl;
    const { username, icon, channel, footer, outputformat, shownonstringfields } = config;
    this.#look = { username, icon, channel, footer, outputformat, shownonstringfields };
    if (config.messageformat !== '') this.#template = compileMessageFormat(config.messageformat);
    this.#logger = logger;
    this.#debug = debug;
  }

  /** Tries the template on a sample event, so a typo such as `{{ .rule }}` shows at start. */
  async checkTemplate(): Promise<void> {
    if (!this.#template) return;
    try {
      await this.#template.render(SAMPLE_EVENT);
    } catch (err) {
      this.#logger.warn(
        { output: this.name, err: (err as Error).message },
        `output ${this.name}: messageformat fails on a sample event (${(err as Error).message}); messages will be sent without the text line until it is fixed`,
      );
    }
  }

  async send(batch: readonly StoredEvent[], ctx: SendContext): Promise<void> {
    for (const item of batch) {
      const ev = item.event;
      await this.#post(slackPayload(ev, this.#look, await this.#render(ev)), ctx.signal);
    }
  }

  async sendSummary(events: readonly StoredEvent[], ctx: SendContext): Promise<void> {
    await this.#post(summaryPayload(events.map((e) => e.event), this.#look), ctx.signal);
  }

  /** As falcosidekick: a failing template leaves the text out and logs why (here at most once a minute). */
  async #render(ev: FalcoEvent): Promise<string | undefined> {
    if (!this.#template) return undefined;
    try {
      return await this.#template.render(ev);
    } catch (err) {
      this.#templateFailures++;
      if (Date.now() - this.#templateWarnedAt >= 60_000) {
        this.#templateWarnedAt = Date.now();
        const n = this.#templateFailures;
        this.#templateFailures = 0;
        this.#logger.warn({ output: this.name, err: (err as Error).message, failures: n }, `Error expanding Slack message: ${(err as Error).message}`);
      }
      return undefined;
    }
  }

  /**
   * Why undici and not @slack/webhook 8.0.2: IncomingWebhook.send() takes no AbortSignal (only a
   * fixed timeout), exposes neither Retry-After nor the TLS settings (checkcert, mutualtls need a
   * dispatcher), and writes JSON.stringify bodies (no Go HTML escaping, no trailing newline, its own
   * User-Agent). A custom `fetch` could patch each of these, after which the library would add
   * nothing but a p-retry loop we would have to switch off. src/http/client.ts already does all of it.
   */
  async #post(payload: Record<string, unknown>, signal: AbortSignal): Promise<void> {
    const body = stringifyLossless(payload) + '\n';
    if (this.#debug) this.#logger.debug({ output: this.name, payload: body.trimEnd() }, 'Slack payload');
    const res = await httpSend(this.#agent, this.#url, { method: 'POST', headers: HEADERS, body, signal });
    try {
      assertOk(res, `slack ${redactUrl(this.#url)}`);
    } catch (err) {
      // A proxy's error page may quote the request path, which is the secret.
      if (err instanceof OutputError) {
        throw new OutputError(redactText(err.message, this.#url), {
          reason: err.reason,
          retryable: err.retryable,
          retryAfterMs: err.retryAfterMs,
          status: err.status,
        });
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

export const slack: OutputType<SlackConfig> = {
  type: 'slack',
  schema,
  secrets: ['webhookurl'],
  // One message at a time, in order, about one a second (Slack's documented webhook rate); a backlog
  // beyond 50 messages (about a minute behind) is summarised rather than posted one by one.
  defaults: { maxBatch: 1, concurrency: 1, rateLimit: 1, summarizeAbove: 50 },
  falcosidekick: {
    prefix: 'slack',
    enabledBy: 'webhookurl',
    keys: {
      webhookurl: 'string',
      channel: 'string',
      username: 'string',
      icon: 'string',
      footer: 'string',
      outputformat: 'string',
      messageformat: 'string',
      shownonstringfields: 'string',
      checkcert: 'string',
      mutualtls: 'string',
    },
  },
  async create(name, config, deps) {
    const agent = createAgent({ checkcert: config.checkcert, mutualtls: config.mutualtls, tls: deps.tls, connections: deps.concurrency });
    const out = new SlackOutput(name, config, agent, deps.logger, deps.debug);
    await out.checkTemplate();
    return out;
  },
};
