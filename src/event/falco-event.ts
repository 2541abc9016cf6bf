import { parseLossless, parseLosslessKeepingText, stringifyExact, escapeHtml, isLosslessNumber, setOwn, TooDeepError } from './json.ts';
import { priorityLevel, priorityName, type Priority } from './priority.ts';
import { BadEventError } from '../errors.ts';

/** An alert after validation and enrichment: falcosidekick's FalcoPayload. */
export interface FalcoEvent {
  uuid: string;
  output: string;
  priority: Priority;
  rule: string;
  /** RFC 3339, normalised as Go re-emits it (fraction without trailing zeros, `Z` for UTC). */
  time: string;
  /** Values as received; numbers are LosslessNumber so int64 stay exact. */
  output_fields: Record<string, unknown>;
  source: string;
  tags: string[];
  hostname: string;
}


const STRING_FIELDS = ['uuid', 'output', 'rule', 'source', 'hostname'] as const;
type Decoded = Omit<FalcoEvent, 'priority'> & {
  priority: string;
  /** output_fields as they arrived, when that text is what serializeEvent would write for them. */
  fieldsText?: string;
};

/**
 * Decodes the JSON of one alert the way falcosidekick's decoder does (keys case-insensitive,
 * unknown keys dropped, last duplicate wins), but says exactly which field is wrong.
 */
export function decodeEvent(text: string): Decoded {
  let raw: unknown;
  let keptText: string | undefined;
  try {
    ({ value: raw, keptText } = parseLosslessKeepingText(text, 'output_fields'));
  } catch (err) {
    throw new BadEventError(err instanceof TooDeepError ? `the body's ${err.message}` : `the body is not valid JSON (${(err as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new BadEventError(`the body must be a JSON object, not ${describe(raw)}`);
  }
  const ev: Decoded = {
    uuid: '',
    output: '',
    priority: '',
    rule: '',
    time: '',
    output_fields: {},
    source: '',
    tags: [],
    hostname: '',
  };
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const k = key.toLowerCase();
    if (value === null) continue;
    if ((STRING_FIELDS as readonly string[]).includes(k) || k === 'priority' || k === 'time') {
      if (typeof value !== 'string') throw new BadEventError(`"${key}" must be a string, not ${describe(value)}`);
      (ev as unknown as Record<string, string>)[k] = value;
    } else if (k === 'output_fields') {
      if (typeof value !== 'object' || Array.isArray(value) || isLosslessNumber(value)) {
        throw new BadEventError(`"${key}" must be an object, not ${describe(value)}`);
      }
      ev.output_fields = value as Record<string, unknown>;
    } else if (k === 'tags') {
      if (!Array.isArray(value) || value.some((t) => typeof t !== 'string')) {
        throw new BadEventError(`"${key}" must be an array of strings`);
      }
      ev.tags = value as string[];
    }
  }
  if (ev.time !== '') ev.time = normaliseTime(ev.time);
  ev.fieldsText = keptText;
  return ev;
}

/** falcosidekick's Check(), run after enrichment, with the reason spelled out. */
export function checkEvent(ev: Decoded): FalcoEvent {
  if (ev.priority === '') throw new BadEventError('"priority" is missing');
  const level = priorityLevel(ev.priority);
  if (level === 0) throw new BadEventError(`"priority": ${JSON.stringify(ev.priority)} is not a Falco priority`);
  if (ev.rule === '') throw new BadEventError('"rule" is missing or empty');
  if (ev.time === '') throw new BadEventError('"time" is missing');
  if (Object.keys(ev.output_fields).length === 0) throw new BadEventError('"output_fields" is missing or empty');
  const { uuid, output, rule, time, output_fields, source, tags, hostname } = ev;
  return { uuid, output, priority: priorityName(level), rule, time, output_fields, source, tags, hostname };
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;
const DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Validates an RFC 3339 time and writes it back as Go's RFC3339Nano would. */
export function normaliseTime(value: string): string {
  const m = RFC3339.exec(value);
  const bad = () => new BadEventError(`"time": ${JSON.stringify(value)} is not an RFC 3339 time such as 2025-04-02T15:15:03.434319636Z`);
  if (!m) throw bad();
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const month = Number(mo);
  const day = Number(d);
  const leap = (Number(y) % 4 === 0 && Number(y) % 100 !== 0) || Number(y) % 400 === 0;
  if (month < 1 || month > 12 || day < 1 || day > DAYS[month - 1] || (month === 2 && day === 29 && !leap)) throw bad();
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) throw bad();
  if (zone !== 'Z' && (Number(zone.slice(1, 3)) > 23 || Number(zone.slice(4)) > 59)) throw bad();
  const fraction = frac ? frac.replace(/0+$/, '') : '';
  const z = zone === '+00:00' ? 'Z' : zone;
  return `${y}-${mo}-${d}T${h}:${mi}:${s}${fraction ? '.' + fraction : ''}${z}`;
}

/** Epoch milliseconds of an event time (truncated, as falcosidekick does for CloudWatch). */
export function eventTimeMs(time: string): number {
  const m = RFC3339.exec(time);
  if (!m) return Date.parse(time);
  const ms = (m[7] ?? '').padEnd(3, '0').slice(0, 3);
  return Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${ms}${m[8]}`);
}

/**
 * The event as falcosidekick's webhook body (without the trailing newline): key order of
 * FalcoPayload, output_fields sorted, tags and hostname omitted when empty, HTML-escaped.
 */
export function serializeEvent(ev: FalcoEvent, fieldsText: string = sortedJson(ev.output_fields)): string {
  // fieldsText: output_fields as they arrived when that text is already what sortedJson writes
  // (parseLosslessKeepingText); they are most of an event's bytes.
  const q = JSON.stringify;
  let text = `{"uuid":${q(ev.uuid)},"output":${q(ev.output)},"priority":${q(ev.priority)},"rule":${q(ev.rule)},"time":${q(ev.time)},"output_fields":${fieldsText},"source":${q(ev.source)}`;
  if (ev.tags.length > 0) text += `,"tags":${q(ev.tags)}`;
  if (ev.hostname !== '') text += `,"hostname":${q(ev.hostname)}`;
  return escapeHtml(text + '}');
}

/**
 * An object's JSON with its keys in Go's order (sorted as strings), exact numbers verbatim. Written
 * key by key: a JavaScript object would put integer-like keys ("2", "10") first, in numeric order.
 */
function sortedJson(fields: Record<string, unknown>): string {
  const keys = Object.keys(fields).sort();
  let text = '{';
  for (let i = 0; i < keys.length; i++) text += `${i > 0 ? ',' : ''}${JSON.stringify(keys[i])}:${stringifyExact(sortKeys(fields[keys[i]]))}`;
  return text + '}';
}

/** Reads back an event written by serializeEvent (as stored on the queue). */
export function deserializeEvent(text: string): FalcoEvent {
  const o = parseLossless(text) as Partial<FalcoEvent>;
  return {
    uuid: o.uuid ?? '',
    output: o.output ?? '',
    priority: (o.priority ?? '') as Priority,
    rule: o.rule ?? '',
    time: o.time ?? '',
    output_fields: o.output_fields ?? {},
    source: o.source ?? '',
    tags: o.tags ?? [],
    hostname: o.hostname ?? '',
  };
}

function sortKeys(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || isLosslessNumber(value)) return value;
  if (Array.isArray(value)) return value.map(sortKeys);
  // Falco already sends its fields sorted: copy only when needed.
  if (isSortedFlat(value as Record<string, unknown>)) return value;
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(value).sort()) setOwn(sorted, k, sortKeys((value as Record<string, unknown>)[k]));
  return sorted;
}

function isSortedFlat(o: Record<string, unknown>): boolean {
  let prev: string | undefined;
  for (const k in o) {
    if (prev !== undefined && prev > k) return false;
    const v = o[k];
    if (v !== null && typeof v === 'object' && !isLosslessNumber(v)) return false;
    prev = k;
  }
  return true;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (isLosslessNumber(value) || typeof value === 'number') return `the number ${String(value)}`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  return `${typeof value} ${String(value)}`;
}
