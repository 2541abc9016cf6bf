/**
 * AWS SNS (falcosidekick's `aws.sns.*`): one Publish per event.
 *
 * - `rawjson: true`: Message is the event JSON (as the webhook body), no attributes.
 * - default: Message is `output`, with message attributes (compat §4.3) for subscription filter
 *   policies: priority, rule, source, hostname, tags (joined with ","), then output fields.
 *
 * Differences from falcosidekick, all on purpose:
 * - never more than SNS's 10 attributes: the five above first, then the `attributefields`
 *   allow-list in its order (or, when it is empty, output fields in name order) until 10;
 * - empty strings are skipped (AWS refuses the whole message otherwise); numbers are sent as
 *   `Number` with their exact literal (int64 stays exact), or as `String` if SNS's Number range
 *   cannot hold them; an output field cannot replace one of the five built-in attributes;
 * - attribute names are made valid (`[`→`.`, `]` dropped as falcosidekick does, other characters → `_`);
 * - an optional `subject` Go template (SNS: under 100 characters, no line breaks);
 * - FIFO topics (`.fifo`): MessageGroupId from the `messagegroupid` template (default: the rule)
 *   and a MessageDeduplicationId derived from the event, so a retried publish is not delivered twice;
 * - messages over 256 KiB (with attributes) are shortened with a marker.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { SNSClient, PublishCommand, type MessageAttributeValue } from '@aws-sdk/client-sns';
import type { OutputType, Output, StoredEvent, SendContext, OutputDeps, FalcoEvent } from './types.ts';
import { bool, stringList } from '../src/config/fields.ts';
import { serializeEvent } from '../src/event/falco-event.ts';
import { isLosslessNumber } from '../src/event/json.ts';
import { compileTemplate, type CompiledTemplate } from '../src/event/template.ts';
import { awsSettingsShape, setupAws, AWS_SHARED_KEYS, AWS_OUTPUT_KEYS, AWS_SECRETS, type AwsSetup } from './aws/credentials.ts';
import { classifyAwsError } from './aws/errors.ts';
import { fitEventJson, truncateText } from './aws/truncate.ts';

export const SNS_LIMITS = {
  /** Message plus attributes (names, types and values), bytes. */
  messageBytes: 262_144,
  attributes: 10,
  /** "must be less than 100 characters long". */
  subjectChars: 99,
  fifoIdChars: 128,
} as const;

const template = (what: string) =>
  z
    .string()
    .default('')
    .superRefine((v, ctx) => {
      if (v === '') return;
      try {
        compileTemplate(what, v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    });

const schema = z.object({
  ...awsSettingsShape,
  /** Enables the output. A `.fifo` ARN selects FIFO publishing. */
  topicarn: z
    .string({ message: 'is required' })
    .regex(/^arn:[a-z-]+:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/, { message: 'is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)' }),
  /** Message is the event JSON and no attributes are set (falcosidekick's rawjson). */
  rawjson: bool.default(false),
  /** Go template for the Subject (email subscriptions show it); empty means none. */
  subject: template('subject'),
  /** Output fields to send as attributes, in order, after the five built-in ones; empty means all, by name. */
  attributefields: stringList.default([]),
  /** FIFO topics: Go template for MessageGroupId; empty means the rule. */
  messagegroupid: template('messagegroupid'),
});
type SnsConfig = z.infer<typeof schema>;

/** What a template sees: falcosidekick's FalcoPayload field names (`{{ .Rule }}`, `{{ index .OutputFields "proc.name" }}`). */
export function templateData(ev: FalcoEvent): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ev.output_fields)) fields[k] = isLosslessNumber(v) ? String(v) : v;
  return {
    UUID: ev.uuid,
    Output: ev.output,
    Priority: ev.priority,
    Rule: ev.rule,
    Time: ev.time,
    OutputFields: fields,
    Source: ev.source,
    Tags: ev.tags,
    Hostname: ev.hostname,
  };
}

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

/** The message attributes for an event (at most 10), and the output fields left out by the cap. */
export function messageAttributes(ev: FalcoEvent, allow: readonly string[]): { attributes: Record<string, MessageAttributeValue>; dropped: string[] } {
  const attributes: Record<string, MessageAttributeValue> = {};
  const dropped: string[] = [];
  let count = 0;
  const put = (name: string, value: MessageAttributeValue) => {
    attributes[name] = value;
    count++;
  };
  const builtins: Array<[string, string]> = [
    ['priority', ev.priority],
    ['rule', ev.rule],
    ['source', ev.source],
    ['hostname', ev.hostname],
    ['tags', ev.tags.join(',')],
  ];
  for (const [name, value] of builtins) if (value !== '') put(name, { DataType: 'String', StringValue: value });
  const reserved = new Set(builtins.map(([n]) => n));
  const fields = allow.length > 0 ? allow : Object.keys(ev.output_fields).sort();
  for (const field of fields) {
    if (!Object.hasOwn(ev.output_fields, field)) continue;
    const value = ev.output_fields[field];
    let attr: MessageAttributeValue;
    if (typeof value === 'string') {
      if (value === '') continue; // SNS refuses empty values
      attr = { DataType: 'String', StringValue: value };
    } else if (isLosslessNumber(value) || typeof value === 'number') {
      const literal = String(value);
      attr = { DataType: snsNumber(literal) ? 'Number' : 'String', StringValue: literal };
    } else {
      continue; // bool, null, arrays and objects, as falcosidekick
    }
    const name = attributeName(field);
    if (name === '' || reserved.has(name) || Object.hasOwn(attributes, name)) continue;
    if (count >= SNS_LIMITS.attributes) {
      dropped.push(field);
      continue;
    }
    put(name, attr);
  }
  return { attributes, dropped };
}

function attributesBytes(attrs: Record<string, MessageAttributeValue>): number {
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

class SnsOutput implements Output {
  readonly #client: SNSClient;
  readonly #fifo: boolean;
  readonly #subject?: CompiledTemplate;
  readonly #groupId?: CompiledTemplate;
  #warnedCap = false;
  #warnedTemplate = false;
  /** uuids published by an earlier attempt of a multi-event batch that later failed. */
  readonly #published = new Set<string>();

  constructor(
    readonly name: string,
    private readonly config: SnsConfig,
    private readonly setup: AwsSetup,
    private readonly deps: OutputDeps,
  ) {
    this.#client = new SNSClient({ ...setup.client });
    this.#fifo = config.topicarn.endsWith('.fifo');
    if (config.subject !== '') this.#subject = compileTemplate('subject', config.subject);
    if (config.messagegroupid !== '') this.#groupId = compileTemplate('messagegroupid', config.messagegroupid);
  }

  async send(batch: readonly StoredEvent[], ctx: SendContext): Promise<void> {
    const now: string[] = [];
    for (const item of batch) {
      const uuid = item.event.uuid;
      if (uuid !== '' && this.#published.has(uuid)) continue;
      try {
        await this.#publish(item, ctx.signal);
      } catch (err) {
        for (const u of now) this.#published.add(u);
        if (this.#published.size > 10_000) this.#published.clear();
        throw err;
      }
      if (uuid !== '') now.push(uuid);
    }
    for (const item of batch) this.#published.delete(item.event.uuid);
  }

  async #publish(item: StoredEvent, signal: AbortSignal): Promise<void> {
    const ev = item.event;
    const data = this.#subject || this.#groupId ? templateData(ev) : undefined;
    const subject = this.#subject ? cleanSubject(await this.#render(this.#subject, data, 'subject')) : '';
    let attributes: Record<string, MessageAttributeValue> | undefined;
    if (!this.config.rawjson) {
      const built = messageAttributes(ev, this.config.attributefields);
      attributes = built.attributes;
      if (built.dropped.length > 0 && !this.#warnedCap) {
        this.#warnedCap = true;
        this.deps.logger.warn(
          { dropped: built.dropped, rule: ev.rule },
          `SNS allows ${SNS_LIMITS.attributes} message attributes; output fields left out: ${built.dropped.join(', ')} (choose them with attributefields; logged once)`,
        );
      }
    }
    const room = SNS_LIMITS.messageBytes - (attributes ? attributesBytes(attributes) : 0);
    let message: string;
    if (this.config.rawjson || ev.output === '') {
      const fitted = fitEventJson(item, room);
      message = fitted.json;
      if (fitted.truncated) this.#warnTruncated(ev, item.json);
    } else {
      message = truncateText(ev.output, room);
      if (message !== ev.output) this.#warnTruncated(ev, ev.output);
    }
    let groupId: string | undefined;
    let dedupId: string | undefined;
    if (this.#fifo) {
      const group = this.#groupId ? (await this.#render(this.#groupId, data, 'messagegroupid')).trim() : '';
      groupId = fifoId(group || ev.rule || 'falco');
      dedupId = deduplicationId(ev);
    }
    const input = {
      TopicArn: this.config.topicarn,
      Message: message,
      Subject: subject || undefined,
      MessageAttributes: attributes && Object.keys(attributes).length > 0 ? attributes : undefined,
      MessageGroupId: groupId,
      MessageDeduplicationId: dedupId,
    };
    if (this.deps.debug) this.deps.logger.debug({ input: { ...input, Message: message.slice(0, 2000) } }, 'SNS: Publish');
    try {
      const out = await this.#client.send(new PublishCommand(input), { abortSignal: signal });
      this.deps.logger.debug({ messageId: out.MessageId }, `SNS: published ${out.MessageId}`);
    } catch (err) {
      throw classifyAwsError(err, `SNS Publish to ${this.config.topicarn}`);
    }
  }

  async #render(tmpl: CompiledTemplate, data: unknown, what: string): Promise<string> {
    try {
      return await tmpl.render(data);
    } catch (err) {
      // A template that fails on one event must not lose the alert: publish without that part.
      if (!this.#warnedTemplate) {
        this.#warnedTemplate = true;
        this.deps.logger.warn({ setting: what, err: (err as Error).message }, `SNS: ${what} template failed; publishing without it (logged once)`);
      }
      return '';
    }
  }

  #warnTruncated(ev: FalcoEvent, original: string): void {
    this.deps.logger.warn(
      { uuid: ev.uuid, rule: ev.rule, bytes: Buffer.byteLength(original, 'utf8') },
      'SNS: message larger than 256 KiB shortened with a truncation marker',
    );
  }

  async close(): Promise<void> {
    this.#client.destroy();
    this.setup.close();
  }
}

export const awsSns: OutputType<SnsConfig> = {
  type: 'awssns',
  schema,
  secrets: [...AWS_SECRETS],
  // One Publish per event: a refused message fails alone and is retried or dead-lettered alone.
  defaults: { maxBatch: 1, concurrency: 8 },
  falcosidekick: {
    prefix: 'aws.sns',
    enabledBy: 'topicarn',
    keys: { topicarn: 'string', rawjson: 'string', subject: 'string', attributefields: 'list', messagegroupid: 'string', ...AWS_OUTPUT_KEYS },
    shared: AWS_SHARED_KEYS,
  },
  async create(name, config, deps) {
    const setup = await setupAws(name, config, deps.logger);
    return new SnsOutput(name, config, setup, deps);
  },
};
