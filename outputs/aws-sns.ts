/**
 * AWS SNS (falcosidekick's `aws.sns.*`): one message per event, published with PublishBatch. The
 * delivery worker hands send() up to 100 events; they are cut into calls of at most 10 entries and
 * 256 KiB in total (message, attributes and subject). Each entry reports its own result: entries
 * that went out are remembered, so the worker's retry of the batch does not publish them twice;
 * failed entries retry (SenderFault=false, e.g. throttling or an internal error) or fail the batch
 * as refused (SenderFault=true, reason naming the events, SNS's code and message). A call refused
 * as a whole for a bad request is repeated one message per call, so that only the bad one fails.
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
 * - messages over 256 KiB (with attributes and subject) are shortened with a marker;
 * - batching (falcosidekick makes one Publish per event).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  SNSClient,
  PublishBatchCommand,
  type BatchResultErrorEntry,
  type MessageAttributeValue,
  type PublishBatchCommandOutput,
  type PublishBatchRequestEntry,
} from '@aws-sdk/client-sns';
import { OutputError, type OutputType, type Output, type StoredEvent, type SendContext, type OutputDeps, type FalcoEvent } from './types.ts';
import { bool, stringList } from '../src/config/fields.ts';
import { serializeEvent } from '../src/event/falco-event.ts';
import { isLosslessNumber } from '../src/event/json.ts';
import { compileTemplate, type CompiledTemplate } from '../src/event/template.ts';
import { awsSettingsShape, setupAws, AWS_SHARED_KEYS, AWS_OUTPUT_KEYS, AWS_SECRETS, type AwsSetup } from './aws/credentials.ts';
import { classifyAwsError, awsErrorCode, isThrottlingCode } from './aws/errors.ts';
import { fitEventJson, truncateText } from './aws/truncate.ts';

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

/**
 * PublishBatch calls of one send() in flight at once, standard topics (FIFO: one at a time).
 * Measured with the real SDK against a local SNS answering after 20 ms (a same-region round trip),
 * sends of 100 events: one send alone takes 228 ms with 1 call at a time, 99 ms with 3, 56 ms with
 * 5, 33 ms with 10; with 8 sends in flight the process is CPU-bound and gets 3,000 / 6,400 / 7,100
 * / 7,100 events/s. CPU per event is the same whichever (~200 µs with the fake, against ~1,100 µs
 * for one Publish per event): the cost is per call, not per concurrent call. 5 makes a full send
 * two round trips, and 8 sends × 5 calls stay within the SDK's 50 sockets per client.
 */
const CALLS_AT_ONCE = 5;
/** Events remembered as published when a multi-call send fails part way (so a retry skips them). */
const REMEMBER_MAX = 10_000;

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

/** "Code: message" of an SDK error. */
function errorDetail(err: unknown): string {
  const code = awsErrorCode(err);
  const message = (err as Error)?.message;
  return `${code}${message && message !== code ? `: ${message}` : ''}`;
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

/** One event ready to publish: its PublishBatch entry (without the Id) and its size as SNS counts it. */
export interface SnsEntry {
  uuid: string;
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

/** Events of a send that did not go out, and why. */
interface Failure {
  entries: SnsEntry[];
  /** "Code: AWS message". */
  detail: string;
  code: string;
  error: OutputError;
  /** The whole call failed (as opposed to entries reported in PublishBatchResult.Failed). */
  whole: boolean;
  /** Not about one message (e.g. the topic does not exist): the other calls would fail the same way. */
  general?: boolean;
}

interface Outcome {
  published: SnsEntry[];
  failures: Failure[];
}

/** A failure after which the remaining calls of the send are not started (the retry sends them). */
const stopsTheSend = (f: Failure) => f.error.retryable || f.error.reason === 'authError' || f.general === true;

class SnsOutput implements Output {
  readonly #client: SNSClient;
  readonly #fifo: boolean;
  readonly #subject?: CompiledTemplate;
  readonly #groupId?: CompiledTemplate;
  #warnedCap = false;
  #warnedTemplate = false;
  /** uuids published by an earlier attempt of a batch that later failed (a retry skips them). */
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
    const pending: SnsEntry[] = [];
    const skipped: string[] = [];
    for (const item of batch) {
      const uuid = item.event.uuid;
      if (uuid !== '' && this.#published.has(uuid)) skipped.push(uuid);
      else pending.push(await this.#entry(item));
    }
    if (pending.length > 0) {
      const { published, failures } = await this.#publishAll(splitEntries(pending), ctx.signal);
      if (failures.length > 0) {
        // What went out stays out: the worker retries the whole batch, and these are skipped then.
        this.#remember(published.map((e) => e.uuid).filter((u) => u !== ''));
        // Only what did not go out is dead-lettered if this is final.
        throw this.#failure(failures, pending.length, published.length, batch.filter((it) => !this.#published.has(it.event.uuid)));
      }
    }
    for (const u of skipped) this.#published.delete(u);
  }

  /**
   * The calls of one send. Standard topics: CALLS_AT_ONCE at a time (see there). FIFO topics: one
   * after the other, so that SNS receives the batch in queue order (it keeps that order within a
   * message group). A throttled, failing or denied call stops the start of further calls.
   */
  async #publishAll(calls: SnsEntry[][], signal: AbortSignal): Promise<Outcome> {
    const all: Outcome = { published: [], failures: [] };
    let next = 0;
    let stop = false;
    const lane = async () => {
      while (!stop && next < calls.length) {
        const out = await this.#publishBatch(calls[next++], signal);
        all.published.push(...out.published);
        all.failures.push(...out.failures);
        if (out.failures.some(stopsTheSend)) stop = true;
      }
    };
    const lanes = this.#fifo ? 1 : Math.min(CALLS_AT_ONCE, calls.length);
    await Promise.all(Array.from({ length: lanes }, lane));
    return all;
  }

  /** One PublishBatch call; never throws, says what went out and what did not. */
  async #publishBatch(entries: readonly SnsEntry[], signal: AbortSignal): Promise<Outcome> {
    // Ids only need to be unique within a call: the entry's index.
    const input = { TopicArn: this.config.topicarn, PublishBatchRequestEntries: entries.map((e, i) => ({ Id: String(i), ...e.entry })) };
    if (this.deps.debug) {
      const shown = input.PublishBatchRequestEntries.map((e) => ({ ...e, Message: e.Message?.slice(0, 2000) }));
      this.deps.logger.debug({ input: { ...input, PublishBatchRequestEntries: shown } }, `SNS: PublishBatch of ${entries.length}`);
    }
    let out: PublishBatchCommandOutput;
    try {
      out = await this.#client.send(new PublishBatchCommand(input), { abortSignal: signal });
    } catch (err) {
      const error = classifyAwsError(err, `SNS PublishBatch to ${this.config.topicarn}`);
      // A refused call (not throttling, access or the network) may be refused for one of its
      // messages: publish them one by one, so that only that one fails, as with Publish.
      if (entries.length > 1 && error.reason === 'clientError' && !signal.aborted) {
        this.deps.logger.warn(
          { code: awsErrorCode(err), messages: entries.length },
          `SNS refused a PublishBatch call (${error.message}); publishing its ${entries.length} messages one per call`,
        );
        return this.#oneByOne(entries, signal, awsErrorCode(err));
      }
      return { published: [], failures: [{ entries: [...entries], detail: errorDetail(err), code: awsErrorCode(err), error, whole: true }] };
    }
    const succeeded = new Set((out.Successful ?? []).map((s) => s.Id));
    const failed = new Map((out.Failed ?? []).map((f) => [f.Id, f]));
    const result: Outcome = { published: [], failures: [] };
    entries.forEach((e, i) => {
      const f = failed.get(String(i));
      if (f) result.failures.push(this.#entryFailure(e, f));
      else if (succeeded.has(String(i))) result.published.push(e);
      // Neither: not known to be published; sent again (at-least-once).
      else result.failures.push(this.#entryFailure(e, { Id: String(i), Code: 'NoResult', Message: 'SNS did not report this entry', SenderFault: false }));
    });
    if (result.published.length > 0) {
      const ids = (out.Successful ?? []).map((s) => s.MessageId);
      this.deps.logger.debug({ messageIds: ids }, `SNS: published ${result.published.length} message(s)`);
    }
    return result;
  }

  /**
   * The entries of a refused call, one per call. When the first two are refused with the call's
   * code too, the refusal is not about one message (a topic that does not exist, a bad
   * parameter of the call): the rest are not tried, and the send stops there.
   */
  async #oneByOne(entries: readonly SnsEntry[], signal: AbortSignal, code: string): Promise<Outcome> {
    const all: Outcome = { published: [], failures: [] };
    for (const [i, e] of entries.entries()) {
      const out = await this.#publishBatch([e], signal);
      all.published.push(...out.published);
      all.failures.push(...out.failures);
      if (out.failures.some(stopsTheSend)) break;
      if (i === 1 && all.published.length === 0 && all.failures.every((f) => f.whole && f.code === code)) {
        all.failures = [{ ...all.failures[0], entries: [...entries], general: true }];
        break;
      }
    }
    return all;
  }

  /**
   * A failed entry: SenderFault=false (throttling, internal errors) retries, SenderFault=true is
   * SNS refusing the message and does not. A throttling code retries whatever its SenderFault.
   */
  #entryFailure(e: SnsEntry, f: BatchResultErrorEntry): Failure {
    const code = f.Code || 'UnknownError';
    const detail = `${code}${f.Message ? `: ${f.Message}` : ''}`;
    const throttled = isThrottlingCode(code);
    const retryable = throttled || f.SenderFault !== true;
    const reason = throttled ? 'rateLimited' : retryable ? 'serverError' : 'clientError';
    const error = new OutputError(`SNS PublishBatch to ${this.config.topicarn}: message ${e.uuid || '(no uuid)'} failed: ${detail}`, { reason, retryable, status: code });
    return { entries: [e], detail, code, error, whole: false };
  }

  /**
   * The one error a send throws. Anything worth retrying comes first (the retry also sends the
   * refused messages again and finds out again); only when nothing is, the refusal.
   */
  #failure(failures: Failure[], sent: number, published: number, undelivered: readonly StoredEvent[]): OutputError {
    const retryable = failures.filter((f) => f.error.retryable);
    const chosen = retryable.length > 0 ? retryable : failures;
    const lead = chosen.find((f) => f.error.reason === 'rateLimited') ?? chosen[0];
    const after = published > 0 ? `; ${published} of ${sent} published (not sent again)` : '';
    if (chosen.every((f) => f.whole)) {
      // Whole calls failed: today's classification and message.
      return new OutputError(`${lead.error.message}${after}`, { ...lead.error, undelivered });
    }
    const events = chosen.flatMap((f) => f.entries.map((e) => e.uuid || '(no uuid)'));
    const shown = events.length > 5 ? `${events.slice(0, 5).join(', ')} and ${events.length - 5} more` : events.join(', ');
    const details = [...new Set(chosen.map((f) => f.detail))];
    const why = details.length > 3 ? `${details.slice(0, 3).join('; ')}; …` : details.join('; ');
    const verb = retryable.length > 0 ? 'failed' : 'refused by SNS';
    return new OutputError(`SNS PublishBatch to ${this.config.topicarn}: ${events.length} of ${sent} message(s) ${verb}: ${why} (event${events.length > 1 ? 's' : ''} ${shown})${after}`, {
      reason: lead.error.reason,
      retryable: lead.error.retryable,
      status: lead.error.status,
      undelivered,
    });
  }

  #remember(uuids: string[]): void {
    for (const u of uuids) this.#published.add(u);
    // Bounded: an event forgotten here is at worst published twice (at-least-once delivery).
    let drop = this.#published.size - REMEMBER_MAX;
    if (drop > 0) {
      for (const u of this.#published) {
        if (drop-- <= 0) break;
        this.#published.delete(u);
      }
    }
  }

  async #entry(item: StoredEvent): Promise<SnsEntry> {
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
    // The subject counts too in a PublishBatch call's total, and one message can fill a call alone.
    const overhead = (attributes ? attributesBytes(attributes) : 0) + Buffer.byteLength(subject, 'utf8');
    const room = SNS_LIMITS.messageBytes - overhead;
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
    return {
      uuid: ev.uuid,
      entry: {
        Message: message,
        Subject: subject || undefined,
        MessageAttributes: attributes && Object.keys(attributes).length > 0 ? attributes : undefined,
        MessageGroupId: groupId,
        MessageDeduplicationId: dedupId,
      },
      bytes: Buffer.byteLength(message, 'utf8') + overhead,
    };
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
  // send() gets up to 100 events and publishes them in PublishBatch calls of up to 10 (ten calls at
  // most, CALLS_AT_ONCE at a time); the SDK's per-call cost (signing, middleware, XML) is what
  // made one Publish per event the costliest output.
  defaults: { maxBatch: 100, concurrency: 8, linger: 20 },
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
