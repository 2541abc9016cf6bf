/**
 * What SNS receives for an alert: the message attributes (subscription filter policies), FIFO ids,
 * the subject, and how entries are cut into PublishBatch calls.
 */
import { createHash } from 'node:crypto';
import type { MessageAttributeValue, PublishBatchRequestEntry } from '@aws-sdk/client-sns';
import { serializeEvent, isLosslessNumber, type FalcoEvent, type StoredEvent } from '../sdk/index.ts';

export const SNS_LIMITS = {
  /** Message plus attributes (names, types and values), bytes. */
  messageBytes: 262_144,
  attributes: 10,
  /** "must be less than 100 characters long". */
  subjectChars: 99,
  fifoIdChars: 128,
  /** PublishBatch: entries per call, and their total size (message, attributes and subject), bytes. */
  batchEntries: 10,
  batchBytes: 262_144,
} as const;

/** An SNS attribute name from an output field name, or '' when none can be made. */
export function attributeName(field: string): string {
  let n = field.replaceAll(']', '').replaceAll('[', '.');
  n = n.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/\.{2,}/g, '.').replace(/^\.+|\.+$/g, '');
  if (/^(aws|amazon)\./i.test(n)) n = `_${n}`;
  return n.slice(0, 256).replace(/\.+$/, '');
}

/** True when SNS's Number type holds the literal exactly: 38 significant digits, 10^-128 … 10^126. */
function snsNumber(literal: string): boolean {
  const m = /^-?(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/.exec(literal);
  if (!m) return false;
  const digits = `${m[1]}${m[2] ?? ''}`.replace(/^0+/, '').replace(/0+$/, '');
  if (digits.length > 38) return false;
  const value = Math.abs(Number(literal));
  return Number.isFinite(value) && (value === 0 || (value >= 1e-128 && value <= 1e126));
}

/**
 * Output fields people filter subscriptions on, sent right after the built-in attributes when no
 * `attributefields` list is set, so SNS's cap of 10 never drops them (Falco's k8s rules print a
 * dozen fields, and by name alone container.* and evt.* came first).
 */
export const FILTERED_FIELDS = ['k8s.ns.name', 'k8s.pod.name', 'container.image.repository'];

/**
 * The message attributes for an event (at most 10), and the output fields left out by the cap.
 * Order: priority, rule, source, hostname; then, by default, FILTERED_FIELDS, tags and the other
 * output fields by name; with an `attributefields` list, tags and then that list in its order.
 */
export function messageAttributes(ev: FalcoEvent, allow: readonly string[]): { attributes: Record<string, MessageAttributeValue>; dropped: string[] } {
  const attributes: Record<string, MessageAttributeValue> = {};
  const dropped: string[] = [];
  const builtins: Array<[string, string]> = [
    ['priority', ev.priority],
    ['rule', ev.rule],
    ['source', ev.source],
    ['hostname', ev.hostname],
  ];
  const reserved = new Set([...builtins.map(([n]) => n), 'tags']);
  const put = (name: string, attr: MessageAttributeValue, field?: string) => {
    if (name === '' || Object.hasOwn(attributes, name) || (field !== undefined && reserved.has(name))) return;
    if (Object.keys(attributes).length >= SNS_LIMITS.attributes) dropped.push(field ?? name);
    else attributes[name] = attr;
  };
  const putField = (field: string) => {
    if (!Object.hasOwn(ev.output_fields, field)) return;
    const attr = fieldAttribute(ev.output_fields[field]);
    if (attr) put(attributeName(field), attr, field);
  };
  for (const [name, value] of builtins) if (value !== '') put(name, { DataType: 'String', StringValue: value });
  const tags = () => ev.tags.length > 0 && put('tags', { DataType: 'String', StringValue: ev.tags.join(',') });
  if (allow.length > 0) {
    tags();
    allow.forEach(putField);
  } else {
    FILTERED_FIELDS.forEach(putField);
    tags();
    for (const field of Object.keys(ev.output_fields).sort()) if (!FILTERED_FIELDS.includes(field)) putField(field);
  }
  return { attributes, dropped };
}

/** An output field's attribute: strings (not empty: SNS refuses those), and exact numbers; nothing else, as falcosidekick. */
function fieldAttribute(value: unknown): MessageAttributeValue | undefined {
  if (typeof value === 'string') return value === '' ? undefined : { DataType: 'String', StringValue: value };
  if (isLosslessNumber(value) || typeof value === 'number') {
    const literal = String(value);
    return { DataType: snsNumber(literal) ? 'Number' : 'String', StringValue: literal };
  }
  return undefined;
}

export function attributesBytes(attrs: Record<string, MessageAttributeValue>): number {
  let n = 0;
  for (const [name, a] of Object.entries(attrs)) n += Buffer.byteLength(name) + Buffer.byteLength(a.DataType ?? '') + Buffer.byteLength(a.StringValue ?? '');
  return n;
}

/** A FIFO id: printable ASCII, at most 128 characters (a long one keeps a prefix and a hash). */
export function fifoId(value: string): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '_');
  if (clean.length <= SNS_LIMITS.fifoIdChars) return clean;
  const hash = createHash('sha256').update(value).digest('hex').slice(0, 16);
  return `${clean.slice(0, SNS_LIMITS.fifoIdChars - 17)}-${hash}`;
}

/**
 * MessageDeduplicationId: sha256 of the event JSON without its uuid. A retry of the same queued
 * event dedups (same JSON), and so does the same alert accepted twice (a client or proxy that
 * re-sent it gets a new uuid at ingest, nothing else differs). Two distinct Falco alerts differ
 * at least in `time` (nanoseconds), so they never collide.
 */
export function deduplicationId(ev: FalcoEvent): string {
  return createHash('sha256').update(serializeEvent({ ...ev, uuid: '' })).digest('hex');
}

/** SNS Subject: one line, no control characters, under 100 characters. */
export function cleanSubject(s: string): string {
  const oneLine = s.replace(/[\r\n\t]+/g, ' ').replace(/[\x00-\x1f\x7f]/g, '').trim();
  return [...oneLine].slice(0, SNS_LIMITS.subjectChars).join('').trim();
}

/** One event ready to publish: its PublishBatch entry (without the Id) and its size as SNS counts it. */
export interface SnsEntry {
  item: StoredEvent;
  entry: Omit<PublishBatchRequestEntry, 'Id'>;
  /** UTF-8 bytes of the message, the attribute names, types and values, and the subject. */
  bytes: number;
}

/** Cuts entries, in order, into PublishBatch calls of at most 10 entries and 262,144 bytes. */
export function splitEntries<T extends { bytes: number }>(entries: readonly T[]): T[][] {
  const calls: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (cur.length > 0 && (cur.length >= SNS_LIMITS.batchEntries || bytes + e.bytes > SNS_LIMITS.batchBytes)) {
      calls.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(e);
    bytes += e.bytes;
  }
  if (cur.length > 0) calls.push(cur);
  return calls;
}
