/**
 * Slack's message for an alert: falcosidekick's attachment (compat §4.1), byte for byte, and the
 * flood-control summary that stands for many alerts. Slack-style attachments are also what
 * Mattermost and Rocket.Chat take.
 */
import { priorityLevel, priorityName, eventTimeMs, isLosslessNumber, goTimeString, type FalcoEvent } from '../sdk/index.ts';

export const DEFAULT_FOOTER = 'https://github.com/falcosecurity/falcosidekick';

export type OutputFormat = 'all' | 'text' | 'fields';

/** Attachment colour by priority level (index = level), as falcosidekick's colour constants. */
const COLORS = ['', '#ccfff2', '#68c2ff', '#5bffb5', '#ffc700', '#e20b0b', '#ff5400', '#ff5400', '#e20b0b'];

export function priorityColor(priority: string): string {
  return COLORS[priorityLevel(priority)] ?? '';
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

export interface Look {
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
