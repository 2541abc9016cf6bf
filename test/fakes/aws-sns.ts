/**
 * A local SNS that speaks the Query protocol the SDK uses (form-encoded `Action=Publish&…`,
 * XML replies) and applies SNS's documented Publish rules, so an adapter that breaks one fails
 * here as it would on AWS:
 *   - at most 10 message attributes; names of letters, digits, `_ - .` (no leading, trailing or
 *     double `.`, no `AWS.`/`Amazon.` prefix); no empty String values; Number values numeric;
 *   - message plus attributes at most 262,144 bytes; Subject under 100 characters, no line breaks
 *     or control characters;
 *   - FIFO topics (`.fifo`) need MessageGroupId and MessageDeduplicationId (128 characters at
 *     most, printable ASCII), and a repeated deduplication id within 5 minutes is accepted
 *     but not delivered again; standard topics refuse both.
 * It can throttle the next N calls and fail with a 500.
 */
import { randomUUID } from 'node:crypto';
import { startFakeServer, queryError, queryResult, xmlEscape, Budget } from './aws-common.ts';

const XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';
export const MAX_MESSAGE_BYTES = 262_144;

export interface Attribute {
  DataType: string;
  StringValue: string;
}

export interface Published {
  topicArn: string;
  message: string;
  subject?: string;
  attributes: Record<string, Attribute>;
  /** Attribute names in the order the request listed them. */
  attributeOrder: string[];
  groupId?: string;
  dedupId?: string;
  messageId: string;
  /** A FIFO duplicate inside the deduplication window: accepted, not delivered. */
  duplicate: boolean;
}

export interface SnsCall {
  action: string;
  params: Record<string, string>;
  accessKeyId: string;
  error?: string;
}

export interface SnsFake {
  url: string;
  calls: SnsCall[];
  /** Every accepted Publish, duplicates included. */
  published: Published[];
  /** What subscribers would receive: accepted and not a FIFO duplicate. */
  delivered(): Published[];
  /** The next n calls, any operation, after `skip` that pass, answer a throttling error. */
  throttle(n: number, skip?: number): void;
  /** The next n calls (after `skip` that pass) answer a 500. */
  fail(n: number, skip?: number): void;
  close(): Promise<void>;
}

const ATTR_NAME = /^[A-Za-z0-9_\-.]{1,256}$/;
const NUMBER = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;
const FIFO_ID = /^[\x21-\x7e]{1,128}$/;

export async function startSnsFake(): Promise<SnsFake> {
  const calls: SnsCall[] = [];
  const published: Published[] = [];
  const dedup = new Map<string, { at: number; messageId: string }>();
  const throttle = new Budget();
  const failing = new Budget();

  const server = await startFakeServer((req, res) => {
    const params = Object.fromEntries(new URLSearchParams(req.body));
    const call: SnsCall = { action: params.Action ?? '', params, accessKeyId: req.accessKeyId };
    calls.push(call);
    const fail = (status: number, code: string, message: string) => {
      call.error = code;
      queryError(res, status, code, message, XMLNS);
    };
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return fail(400, 'InvalidAction', 'expected a form body');
    if (params.Version !== '2010-03-31') return fail(400, 'InvalidParameterValue', `bad Version ${params.Version}`);
    if (throttle.take()) return fail(400, 'Throttling', 'Rate exceeded');
    if (failing.take()) return fail(500, 'InternalError', 'Internal failure');
    if (call.action !== 'Publish') return fail(400, 'InvalidAction', `action ${call.action} is not faked`);

    const topicArn = params.TopicArn ?? '';
    if (!/^arn:aws:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+(\.fifo)?$/.test(topicArn)) return fail(400, 'InvalidParameter', 'Invalid parameter: TopicArn');
    const message = params.Message;
    if (message === undefined || message === '') return fail(400, 'InvalidParameter', 'Invalid parameter: Empty message');

    const attributes: Record<string, Attribute> = {};
    const attributeOrder: string[] = [];
    let size = Buffer.byteLength(message, 'utf8');
    for (let i = 1; params[`MessageAttributes.entry.${i}.Name`] !== undefined; i++) {
      const name = params[`MessageAttributes.entry.${i}.Name`];
      const a = { DataType: params[`MessageAttributes.entry.${i}.Value.DataType`] ?? '', StringValue: params[`MessageAttributes.entry.${i}.Value.StringValue`] ?? '' };
      if (!ATTR_NAME.test(name) || name.startsWith('.') || name.endsWith('.') || name.includes('..') || /^(aws|amazon)\./i.test(name)) {
        return fail(400, 'InvalidParameterValue', `The message attribute name '${name}' is invalid.`);
      }
      if (a.DataType !== 'String' && a.DataType !== 'Number') return fail(400, 'InvalidParameterValue', `The message attribute '${name}' has an invalid message attribute type`);
      if (a.StringValue === '') {
        return fail(400, 'InvalidParameterValue', `The message attribute '${name}' must contain non-empty message attribute value for message attribute type '${a.DataType}'.`);
      }
      if (a.DataType === 'Number' && !NUMBER.test(a.StringValue)) return fail(400, 'InvalidParameterValue', `The message attribute '${name}' has an invalid numeric value: ${a.StringValue}`);
      attributes[name] = a;
      attributeOrder.push(name);
      size += Buffer.byteLength(name) + Buffer.byteLength(a.DataType) + Buffer.byteLength(a.StringValue);
    }
    if (attributeOrder.length > 10) return fail(400, 'InvalidParameterValue', `Number of message attributes [${attributeOrder.length}] exceeds the allowed maximum [10].`);
    if (size > MAX_MESSAGE_BYTES) return fail(400, 'InvalidParameter', 'Invalid parameter: Message too long');

    const subject = params.Subject;
    if (subject !== undefined && (subject === '' || [...subject].length >= 100 || /[\x00-\x1f\x7f]/.test(subject))) {
      return fail(400, 'InvalidParameter', 'Invalid parameter: Subject');
    }

    const fifo = topicArn.endsWith('.fifo');
    const groupId = params.MessageGroupId;
    const dedupId = params.MessageDeduplicationId;
    if (fifo) {
      if (!groupId) return fail(400, 'InvalidParameter', 'Invalid parameter: The MessageGroupId parameter is required for FIFO topics');
      if (!dedupId) {
        return fail(400, 'InvalidParameter', 'Invalid parameter: The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly');
      }
      if (!FIFO_ID.test(groupId)) return fail(400, 'InvalidParameter', 'Invalid parameter: MessageGroupId');
      if (!FIFO_ID.test(dedupId)) return fail(400, 'InvalidParameter', 'Invalid parameter: MessageDeduplicationId');
    } else if (groupId !== undefined || dedupId !== undefined) {
      return fail(400, 'InvalidParameter', 'Invalid parameter: MessageGroupId and MessageDeduplicationId are for FIFO topics only');
    }

    let messageId: string = randomUUID();
    let duplicate = false;
    if (fifo) {
      const key = `${topicArn}|${dedupId}`;
      const seen = dedup.get(key);
      if (seen && Date.now() - seen.at < 5 * 60_000) {
        duplicate = true;
        messageId = seen.messageId;
      } else {
        dedup.set(key, { at: Date.now(), messageId });
      }
    }
    published.push({ topicArn, message, subject, attributes, attributeOrder, groupId, dedupId, messageId, duplicate });
    const seq = fifo ? `<SequenceNumber>${String(published.length).padStart(20, '0')}</SequenceNumber>` : '';
    queryResult(res, 'Publish', `<MessageId>${xmlEscape(messageId)}</MessageId>${seq}`, XMLNS);
  });

  return {
    url: server.url,
    calls,
    published,
    delivered: () => published.filter((p) => !p.duplicate),
    throttle: (n, skip) => throttle.set(n, skip),
    fail: (n, skip) => failing.set(n, skip),
    close: () => server.close(),
  };
}
