/**
 * Slack's message for an alert: falcosidekick's attachment (compat §4.1), byte for byte, and the
 * flood-control summary that stands for many alerts. Slack-style attachments are also what
 * Mattermost and Rocket.Chat take.
 */
import { priorityLevel, isLosslessNumber, goTimeString, eventTimeMs, summaryLine, lastMinutes, highestPriority, type FalcoEvent, type SummaryGroup, type SummaryReason } from '../sdk/index.ts';

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

/** Groups beyond this many get one combined attachment (Slack shows at most 100 attachments). */
const MAX_SUMMARY_GROUPS = 20;

function listSome(values: readonly string[], max = 5): string {
  const all = [...values].sort();
  return all.length <= max ? all.join(', ') : `${all.slice(0, max).join(', ')} (+${all.length - max} more)`;
}

const HEADER: Record<SummaryReason, string> = {
  backlog: 'summarised instead of posted one by one (they still reached every other output)',
  dedup: 'held back as duplicates (dedup)',
  throttle: 'held back by the throttle',
};

/**
 * One message for many alerts: an attachment per group (flood control: per rule; dedup and
 * throttle: per key), coloured by the highest priority seen. One POST, so a retry never posts a
 * group's summary twice.
 */
export function summaryPayload(groups: readonly SummaryGroup[], look: Look): Record<string, unknown> {
  const sorted = [...groups].sort((a, b) => b.count - a.count);
  const shown = sorted.length > MAX_SUMMARY_GROUPS ? sorted.slice(0, MAX_SUMMARY_GROUPS - 1) : sorted;
  const rest = sorted.slice(shown.length);
  const withFields = look.outputformat !== 'text';
  const footer = look.footer || DEFAULT_FOOTER;

  const attachments = shown.map((g) => {
    const line = summaryLine(g);
    const a: Record<string, unknown> = { fallback: line, color: priorityColor(highestPriority(g)), text: line };
    if (withFields) {
      const priorities = Object.entries(g.byPriority)
        .sort((x, y) => priorityLevel(y[0]) - priorityLevel(x[0]))
        .map(([p, n]) => `${p}: ${n}`);
      const fields = g.key.map(([k, v]) => field(k, v));
      if (!g.key.some(([k]) => k === 'rule')) fields.push(field(g.rules.length === 1 ? 'rule' : 'rules', listSome(g.rules)));
      fields.push(field('priority', priorities.join(', ')));
      if (g.hostnames.length > 0) fields.push(field(g.hostnames.length === 1 ? 'hostname' : 'hostnames', listSome(g.hostnames)));
      if (g.pods.length > 0) fields.push(field(g.pods.length === 1 ? 'pod' : 'pods', listSome(g.pods)));
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
    const byTime = (a: SummaryGroup, b: SummaryGroup) => eventTimeMs(a.first) - eventTimeMs(b.first);
    const times = { first: [...rest].sort(byTime)[0].first, last: [...rest].sort((a, b) => eventTimeMs(b.last) - eventTimeMs(a.last))[0].last };
    const what = rest.every((g) => g.reason === 'backlog') ? 'rules' : 'groups';
    const line = `${count} more alerts for ${rest.length} other ${what} ${lastMinutes(times)}`;
    const a: Record<string, unknown> = { fallback: line, color: priorityColor(highestPriority({ ...rest[0], byPriority: Object.assign({}, ...rest.map((g) => g.byPriority)) })), text: line };
    a.fields = withFields ? [field('rules', listSome([...new Set(rest.flatMap((g) => g.rules))], 10), false)] : null;
    if (withFields) a.footer = footer;
    attachments.push(a);
  }
  const total = groups.reduce((n, g) => n + g.count, 0);
  const reasons = [...new Set(groups.map((g) => g.reason))];
  const text = `${reasons.length === 1 && reasons[0] === 'backlog' ? 'Flood control' : 'Noise control'}: ${total} alert${total === 1 ? '' : 's'} ${reasons.map((r) => HEADER[r]).join('; ')}`;
  return envelope(look, text, attachments);
}
