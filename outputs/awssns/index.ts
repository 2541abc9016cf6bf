/**
 * AWS SNS (falcosidekick's `aws.sns.*`): one message per alert, published with PublishBatch. The
 * pipeline hands send() up to 100 alerts; they are cut into calls of at most 10 entries and 256 KiB
 * in total (message, attributes and subject). Each entry's result goes back to the pipeline: what
 * went out is never sent again, failed entries retry (SenderFault=false, e.g. throttling or an
 * internal error) or are dead-lettered as refused (SenderFault=true, with SNS's code and message).
 * A call refused as a whole for a bad request is repeated one message per call, so that only the
 * bad one fails.
 *
 * - `rawjson: true`: Message is the alert JSON (as the webhook body), no attributes.
 * - default: Message is `output`, with message attributes (compat §4.3, order in payload.ts) for
 *   subscription filter policies.
 *
 * Differences from falcosidekick, all on purpose:
 * - never more than SNS's 10 attributes, the ones subscriptions filter on (namespace, pod, image)
 *   right after the built-in ones so the cap does not drop them (order in payload.ts);
 * - empty strings are skipped (AWS refuses the whole message otherwise); numbers are sent as
 *   `Number` with their exact literal (int64 stays exact), or as `String` if SNS's Number range
 *   cannot hold them; an output field cannot replace a built-in attribute;
 * - attribute names are made valid (`[`→`.`, `]` dropped as falcosidekick does, other characters → `_`);
 * - an optional `subject` Go template (SNS: under 100 characters, no line breaks);
 * - FIFO topics (`.fifo`): MessageGroupId from the `messagegroupid` template (default: the rule)
 *   and a MessageDeduplicationId derived from the alert, so a retried publish is not delivered twice;
 * - messages over 256 KiB (with attributes and subject) are shortened with a marker;
 * - batching (falcosidekick makes one Publish per alert).
 */
import { z } from 'zod';
import { SNSClient, PublishBatchCommand, type BatchResultErrorEntry, type MessageAttributeValue, type PublishBatchCommandOutput } from '@aws-sdk/client-sns';
import {
  OutputError,
  bool,
  stringList,
  goTemplate,
  payloadData,
  fitEventJson,
  truncateText,
  type OutputType,
  type Output,
  type StoredEvent,
  type SendContext,
  type OutputDeps,
  type FalcoEvent,
  type GoTemplate,
} from '../sdk/index.ts';
import { awsSettingsShape, awsShared, AwsClient, AWS_SECRETS, classifyAwsError, awsErrorCode, isThrottlingCode } from '../sdk/aws/index.ts';
import { SNS_LIMITS, messageAttributes, attributesBytes, fifoId, deduplicationId, cleanSubject, splitEntries, type SnsEntry } from './payload.ts';

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

const schema = z.object({
  ...awsSettingsShape,
  topicarn: z
    .string({ message: 'is required' })
    .regex(/^arn:[a-z-]+:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/, { message: 'is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)' })
    .describe('Enables the output: the topic. A `.fifo` ARN selects FIFO publishing.'),
  rawjson: bool.default(false).describe("Message is the alert's JSON and no attributes are set (falcosidekick's rawjson)."),
  subject: goTemplate('subject').describe('A Go template for the Subject (e-mail subscriptions show it); empty for none.'),
  attributefields: stringList
    .default([])
    .describe(
      'Output fields sent as attributes, in this order, after priority, rule, source, hostname and tags (SNS keeps 10). Empty: priority, rule, source, hostname, k8s.ns.name, k8s.pod.name, container.image.repository, tags, then the other output fields by name, so the fields subscriptions filter on are kept.',
    ),
  messagegroupid: goTemplate('messagegroupid').describe('FIFO topics: a Go template for MessageGroupId; empty means the rule.'),
});
type SnsConfig = z.infer<typeof schema>;

/** Why the entries of a call did not go out; `stops` when the calls not yet made should not be. */
interface Failure {
  entries: SnsEntry[];
  error: OutputError;
  /** SNS's error code. */
  code: string;
  stops: boolean;
}

/** One send(): its context, and the failure that stopped it, if any. */
interface SendState {
  readonly ctx: SendContext;
  stop?: Failure;
}

class SnsOutput implements Output {
  readonly #fifo: boolean;
  readonly #aws = new AwsClient('SNS', (o) => new SNSClient(o));
  #warnedCap = false;

  constructor(
    private readonly config: SnsConfig,
    private readonly deps: OutputDeps,
  ) {
    this.#fifo = config.topicarn.endsWith('.fifo');
  }

  setup(signal: AbortSignal): Promise<void> {
    return this.#aws.setup(this.deps.name, this.config, this.deps.logger, signal);
  }

  async send(batch: readonly StoredEvent[], ctx: SendContext): Promise<void> {
    const entries: SnsEntry[] = [];
    for (const item of batch) entries.push(await this.#entry(item));
    const calls = splitEntries(entries);
    let next = 0;
    // Shared by every call of this send, the one-by-one calls of a refused one included: after a
    // throttled, failing or denied call, no other starts (they would meet the same answer).
    const send: SendState = { ctx };
    // Standard topics: CALLS_AT_ONCE at a time. FIFO: one after the other, so that SNS receives the
    // batch in queue order (it keeps that order within a message group).
    const lane = async () => {
      while (!send.stop && !ctx.signal.aborted && next < calls.length) await this.#publishBatch(calls[next++], send);
    };
    await Promise.all(Array.from({ length: this.#fifo ? 1 : Math.min(CALLS_AT_ONCE, calls.length) }, lane));
    // Calls not made after a stopping failure fail the same way; after a timeout the pipeline fails them.
    if (send.stop) ctx.failed(calls.slice(next).flat().map((e) => e.item), send.stop.error);
  }

  /** One PublishBatch call; reports each entry to the pipeline and returns the failures. */
  async #publishBatch(entries: readonly SnsEntry[], send: SendState): Promise<Failure[]> {
    const { ctx } = send;
    const { signal } = ctx;
    // Ids only need to be unique within a call: the entry's index.
    const input = { TopicArn: this.config.topicarn, PublishBatchRequestEntries: entries.map((e, i) => ({ Id: String(i), ...e.entry })) };
    if (this.deps.debug) {
      const shown = input.PublishBatchRequestEntries.map((e) => ({ ...e, Message: e.Message?.slice(0, 2000) }));
      this.deps.logger.debug({ input: { ...input, PublishBatchRequestEntries: shown } }, `SNS: PublishBatch of ${entries.length}`);
    }
    let out: PublishBatchCommandOutput;
    try {
      out = await this.#aws.client.send(new PublishBatchCommand(input), { abortSignal: signal });
    } catch (err) {
      const error = classifyAwsError(err, `SNS PublishBatch to ${this.config.topicarn}`);
      // A refused call (not throttling, access or the network) may be refused for one of its
      // messages: publish them one by one, so that only that one fails, as with Publish.
      if (entries.length > 1 && error.reason === 'clientError' && !signal.aborted) {
        this.deps.logger.warn({ code: awsErrorCode(err), messages: entries.length }, `SNS refused a PublishBatch call (${error.message}); publishing its ${entries.length} messages one per call`);
        return this.#oneByOne(entries, send, awsErrorCode(err));
      }
      return [this.#report({ entries: [...entries], error, code: awsErrorCode(err), stops: error.retryable || error.reason === 'authError' }, send)];
    }
    const succeeded = new Set((out.Successful ?? []).map((s) => s.Id));
    const failed = new Map((out.Failed ?? []).map((f) => [f.Id, f]));
    const published: SnsEntry[] = [];
    const byCode = new Map<string, Failure>();
    entries.forEach((e, i) => {
      if (!failed.has(String(i)) && succeeded.has(String(i))) return void published.push(e);
      // Neither reported: not known to be published; sent again (at-least-once).
      const f = failed.get(String(i)) ?? { Id: String(i), Code: 'NoResult', Message: 'SNS did not report this entry', SenderFault: false };
      const key = `${f.Code}|${f.SenderFault}`;
      if (!byCode.has(key)) byCode.set(key, { entries: [], error: this.#entryError(f), code: f.Code ?? '', stops: false });
      byCode.get(key)!.entries.push(e);
    });
    ctx.delivered(published.map((e) => e.item));
    if (published.length > 0) this.deps.logger.debug({ messageIds: (out.Successful ?? []).map((s) => s.MessageId) }, `SNS: published ${published.length} message(s)`);
    return [...byCode.values()].map((f) => this.#report({ ...f, stops: f.error.retryable }, send));
  }

  /**
   * The entries of a refused call, one per call. When the first two are refused with the call's
   * code too, the refusal is not about one message (a topic that does not exist, a bad parameter
   * of the call): the rest fail the same way without being tried.
   */
  async #oneByOne(entries: readonly SnsEntry[], send: SendState, code: string): Promise<Failure[]> {
    const all: Failure[] = [];
    for (const [i, e] of entries.entries()) {
      // Stopped by this call's messages or by another call of the send (or timed out): the rest
      // are not tried, and fail as the calls not made do.
      if (send.stop || send.ctx.signal.aborted) {
        if (send.stop) this.#report({ ...send.stop, entries: entries.slice(i) }, send);
        return all;
      }
      all.push(...(await this.#publishBatch([e], send)));
      if (i === 1 && all.length === 2 && all.every((f) => f.code === code)) {
        return [...all, this.#report({ ...all[0], entries: entries.slice(2), stops: true }, send)];
      }
    }
    return all;
  }

  /** Tells the pipeline these entries failed; the first failure that stops the send is kept. */
  #report(f: Failure, send: SendState): Failure {
    send.ctx.failed(
      f.entries.map((e) => e.item),
      f.error,
    );
    if (f.stops) send.stop ??= f;
    return f;
  }

  /** A failed entry: throttling codes and SenderFault=false retry; SenderFault=true is SNS refusing the message. */
  #entryError(f: BatchResultErrorEntry): OutputError {
    const code = f.Code || 'UnknownError';
    const throttled = isThrottlingCode(code);
    const retryable = throttled || f.SenderFault !== true;
    const reason = throttled ? 'rateLimited' : retryable ? 'serverError' : 'clientError';
    return new OutputError(`SNS PublishBatch to ${this.config.topicarn}: ${code}${f.Message ? `: ${f.Message}` : ''}`, { reason, retryable, status: code });
  }

  async #entry(item: StoredEvent): Promise<SnsEntry> {
    const ev = item.event;
    const data = this.config.subject || this.config.messagegroupid ? payloadData(ev) : undefined;
    const subject = this.config.subject ? cleanSubject(await this.#render(this.config.subject, data)) : '';
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
      const group = this.config.messagegroupid ? (await this.#render(this.config.messagegroupid, data)).trim() : '';
      groupId = fifoId(group || ev.rule || 'falco');
      dedupId = deduplicationId(ev);
    }
    return {
      item,
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

  #render(tmpl: GoTemplate, data: unknown): Promise<string> {
    return tmpl.renderOrEmpty(data, (msg, extra) => this.deps.logger.warn(extra, `SNS: ${msg}`));
  }

  #warnTruncated(ev: FalcoEvent, original: string): void {
    this.deps.count('truncated');
    this.deps.logger.warn({ uuid: ev.uuid, rule: ev.rule, bytes: Buffer.byteLength(original, 'utf8') }, 'SNS: message larger than 256 KiB shortened with a truncation marker');
  }

  async close(): Promise<void> {
    this.#aws.close();
  }
}

export const awsSns: OutputType<typeof schema> = {
  type: 'awssns',
  schema,
  secrets: [...AWS_SECRETS],
  // send() gets up to 100 alerts and publishes them in PublishBatch calls of up to 10 (ten calls at
  // most, CALLS_AT_ONCE at a time); the SDK's per-call cost (signing, middleware, XML) is what
  // made one Publish per alert the costliest output.
  defaults: { maxBatch: 100, concurrency: 8, linger: 20 },
  falcosidekick: { prefix: 'aws.sns', enabledBy: 'topicarn', shared: awsShared },
  create: (config, deps) => new SnsOutput(config, deps),
};
