/**
 * A local SNS that speaks the Query protocol the SDK uses (form-encoded `Action=Publish&…` or
 * `Action=PublishBatch&…PublishBatchRequestEntries.member.N.*`, XML replies) and applies SNS's
 * documented rules, so an adapter that breaks one fails here as it would on AWS. Per message
 * (Publish, or each PublishBatch entry):
 *   - at most 10 message attributes; names of letters, digits, `_ - .` (no leading, trailing or
 *     double `.`, no `AWS.`/`Amazon.` prefix); no empty String values; Number values numeric;
 *   - message plus attributes at most 262,144 bytes; Subject under 100 characters, no line breaks
 *     or control characters;
 *   - FIFO topics (`.fifo`) need MessageGroupId and MessageDeduplicationId (128 characters at
 *     most, printable ASCII), and a repeated deduplication id within 5 minutes (also within one
 *     batch) is accepted but not delivered again; standard topics refuse both.
 * A Publish that breaks one is refused as a whole (400); a PublishBatch entry that does is listed
 * under `Failed` with SenderFault=true while the other entries are published. PublishBatch as a
 * whole also needs 1 to 10 entries, distinct Ids of `[A-Za-z0-9_-]{1,80}`, and at most 262,144
 * bytes in total (messages, attribute names, types and values, and subjects).
 * It can throttle the next N calls, fail them with a 500, refuse them with a 400 (optionally echoing
 * the request's Authorization header, as some proxies and services do in their error text), leave
 * them unanswered, and fail chosen batch entries (retryable or not).
 */
import { randomUUID } from 'node:crypto';
import { startFakeServer, queryError, queryResult, xmlEscape, Budget } from '../sdk/testkit/aws-fake.ts';

const XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';
export const MAX_MESSAGE_BYTES = 262_144;
export const MAX_BATCH_ENTRIES = 10;
export const MAX_BATCH_BYTES = 262_144;

export interface Attribute {
  DataType: string;
  StringValue: string;
}

/** A message as it arrived, before the topic's rules are applied. */
export interface MessageRequest {
  message: string;
  subject?: string;
  attributes: Record<string, Attribute>;
  attributeOrder: string[];
  groupId?: string;
  dedupId?: string;
}

export interface Published extends MessageRequest {
  topicArn: string;
  messageId: string;
  /** A FIFO duplicate inside the deduplication window: accepted, not delivered. */
  duplicate: boolean;
  /** Index in `calls` of the request that carried it. */
  call: number;
  /** The PublishBatch entry Id; undefined for Publish. */
  entryId?: string;
}

export interface SnsCall {
  action: string;
  params: Record<string, string>;
  accessKeyId: string;
  /** The error code of a call refused as a whole. */
  error?: string;
  /** PublishBatch: the entries, by Id, with the Code of those listed under Failed. */
  entries?: Array<{ id: string; error?: string }>;
}

/** Scripted failures of PublishBatch entries (after the entry passed SNS's own checks). */
export interface EntryFailure {
  code: string;
  message?: string;
  senderFault: boolean;
  /** Only entries this accepts; default every entry. */
  match?: (entry: MessageRequest) => boolean;
  /** Fail the next n matching entries after letting `skip` through; default every one, forever. */
  n?: number;
  skip?: number;
}

export interface SnsFake {
  url: string;
  calls: SnsCall[];
  /** Every accepted message (Publish or batch entry), duplicates included. */
  published: Published[];
  /** What subscribers would receive: accepted and not a FIFO duplicate. */
  delivered(): Published[];
  /** The next n calls, any operation, after `skip` that pass, answer a throttling error. */
  throttle(n: number, skip?: number): void;
  /** The next n calls (after `skip` that pass) answer a 500. */
  fail(n: number, skip?: number): void;
  /**
   * The next n calls (after `skip` that pass) are refused as a whole: 400 with this code. With
   * `echo`, the message ends with the request's Authorization header (which names the access key);
   * with `delayMs`, the refusal comes that late (so that another call's answer arrives first).
   */
  refuse(n: number, code: string, message: string, skip?: number, opts?: { echo?: boolean; delayMs?: number }): void;
  /** The next n calls (after `skip` that pass) are held without an answer until the client gives up. */
  hang(n: number, skip?: number): void;
  /** Adds a rule that fails PublishBatch entries; rules are tried in the order they were added. */
  failEntries(rule: EntryFailure): void;
  /** Removes every entry failure rule. */
  clearEntryFailures(): void;
  /** Calls whose form body matches are never answered (the client's timeout ends them); undefined stops it. */
  stall(match: ((body: string) => boolean) | undefined): void;
  close(): Promise<void>;
}

const ATTR_NAME = /^[A-Za-z0-9_\-.]{1,256}$/;
const NUMBER = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;
const FIFO_ID = /^[\x21-\x7e]{1,128}$/;
const ENTRY_ID = /^[A-Za-z0-9_-]{1,80}$/;
const ENTRY_KEY = /^PublishBatchRequestEntries\.member\.(\d+)\.(.+)$/;

interface Refusal {
  code: string;
  message: string;
  echo?: boolean;
  delayMs?: number;
}

/** The message under `prefix` ('' for Publish, `PublishBatchRequestEntries.member.N.` for an entry). */
function readMessage(params: Record<string, string>, prefix: string): MessageRequest {
  const attributes: Record<string, Attribute> = {};
  const attributeOrder: string[] = [];
  for (let i = 1; params[`${prefix}MessageAttributes.entry.${i}.Name`] !== undefined; i++) {
    const name = params[`${prefix}MessageAttributes.entry.${i}.Name`];
    attributes[name] = {
      DataType: params[`${prefix}MessageAttributes.entry.${i}.Value.DataType`] ?? '',
      StringValue: params[`${prefix}MessageAttributes.entry.${i}.Value.StringValue`] ?? '',
    };
    attributeOrder.push(name);
  }
  return {
    message: params[`${prefix}Message`] ?? '',
    subject: params[`${prefix}Subject`],
    attributes,
    attributeOrder,
    groupId: params[`${prefix}MessageGroupId`],
    dedupId: params[`${prefix}MessageDeduplicationId`],
  };
}

/** SNS's rules for one message, or why it refuses it. */
function checkMessage(m: MessageRequest, fifo: boolean): Refusal | undefined {
  const bad = (code: string, message: string) => ({ code, message });
  if (m.message === '') return bad('InvalidParameter', 'Invalid parameter: Empty message');
  let size = Buffer.byteLength(m.message, 'utf8');
  for (const name of m.attributeOrder) {
    const a = m.attributes[name];
    if (!ATTR_NAME.test(name) || name.startsWith('.') || name.endsWith('.') || name.includes('..') || /^(aws|amazon)\./i.test(name)) {
      return bad('InvalidParameterValue', `The message attribute name '${name}' is invalid.`);
    }
    if (a.DataType !== 'String' && a.DataType !== 'Number') return bad('InvalidParameterValue', `The message attribute '${name}' has an invalid message attribute type`);
    if (a.StringValue === '') {
      return bad('InvalidParameterValue', `The message attribute '${name}' must contain non-empty message attribute value for message attribute type '${a.DataType}'.`);
    }
    if (a.DataType === 'Number' && !NUMBER.test(a.StringValue)) return bad('InvalidParameterValue', `The message attribute '${name}' has an invalid numeric value: ${a.StringValue}`);
    size += Buffer.byteLength(name) + Buffer.byteLength(a.DataType) + Buffer.byteLength(a.StringValue);
  }
  if (m.attributeOrder.length > 10) return bad('InvalidParameterValue', `Number of message attributes [${m.attributeOrder.length}] exceeds the allowed maximum [10].`);
  if (size > MAX_MESSAGE_BYTES) return bad('InvalidParameter', 'Invalid parameter: Message too long');
  if (m.subject !== undefined && (m.subject === '' || [...m.subject].length >= 100 || /[\x00-\x1f\x7f]/.test(m.subject))) {
    return bad('InvalidParameter', 'Invalid parameter: Subject');
  }
  if (fifo) {
    if (!m.groupId) return bad('InvalidParameter', 'Invalid parameter: The MessageGroupId parameter is required for FIFO topics');
    if (!m.dedupId) {
      return bad('InvalidParameter', 'Invalid parameter: The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly');
    }
    if (!FIFO_ID.test(m.groupId)) return bad('InvalidParameter', 'Invalid parameter: MessageGroupId');
    if (!FIFO_ID.test(m.dedupId)) return bad('InvalidParameter', 'Invalid parameter: MessageDeduplicationId');
  } else if (m.groupId !== undefined || m.dedupId !== undefined) {
    return bad('InvalidParameter', 'Invalid parameter: MessageGroupId and MessageDeduplicationId are for FIFO topics only');
  }
  return undefined;
}

/** What SNS counts of a message towards a batch's total. */
function batchBytes(m: MessageRequest): number {
  let n = Buffer.byteLength(m.message, 'utf8') + Buffer.byteLength(m.subject ?? '', 'utf8');
  for (const [name, a] of Object.entries(m.attributes)) n += Buffer.byteLength(name) + Buffer.byteLength(a.DataType) + Buffer.byteLength(a.StringValue);
  return n;
}

export async function startSnsFake(): Promise<SnsFake> {
  const calls: SnsCall[] = [];
  const published: Published[] = [];
  const dedup = new Map<string, { at: number; messageId: string }>();
  const throttle = new Budget();
  const failing = new Budget();
  const refusing = new Budget();
  const hanging = new Budget();
  let refusal: Refusal = { code: 'InvalidParameter', message: 'Invalid parameter' };
  let entryRules: Array<EntryFailure & { budget?: Budget }> = [];
  let stalling: ((body: string) => boolean) | undefined;

  /** Records an accepted message; its MessageId and, for FIFO, SequenceNumber. */
  const accept = (m: MessageRequest, topicArn: string, call: number, entryId?: string) => {
    const fifo = topicArn.endsWith('.fifo');
    let messageId: string = randomUUID();
    let duplicate = false;
    if (fifo) {
      const key = `${topicArn}|${m.dedupId}`;
      const seen = dedup.get(key);
      if (seen && Date.now() - seen.at < 5 * 60_000) {
        duplicate = true;
        messageId = seen.messageId;
      } else {
        dedup.set(key, { at: Date.now(), messageId });
      }
    }
    published.push({ ...m, topicArn, messageId, duplicate, call, entryId });
    const seq = fifo ? `<SequenceNumber>${String(published.length).padStart(20, '0')}</SequenceNumber>` : '';
    return `<MessageId>${xmlEscape(messageId)}</MessageId>${seq}`;
  };

  const scriptedFailure = (m: MessageRequest): EntryFailure | undefined => {
    for (const rule of entryRules) {
      if (rule.match && !rule.match(m)) continue;
      if (!rule.budget || rule.budget.take()) return rule;
    }
    return undefined;
  };

  const server = await startFakeServer((req, res) => {
    const params = Object.fromEntries(new URLSearchParams(req.body));
    const call: SnsCall = { action: params.Action ?? '', params, accessKeyId: req.accessKeyId };
    const callIndex = calls.push(call) - 1;
    const fail = (status: number, code: string, message: string) => {
      call.error = code;
      queryError(res, status, code, message, XMLNS);
    };
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return fail(400, 'InvalidAction', 'expected a form body');
    if (params.Version !== '2010-03-31') return fail(400, 'InvalidParameterValue', `bad Version ${params.Version}`);
    if (stalling?.(req.body) || hanging.take()) {
      call.error = 'stalled';
      return;
    }
    if (throttle.take()) return fail(400, 'Throttling', 'Rate exceeded');
    if (failing.take()) return fail(500, 'InternalError', 'Internal failure');
    if (refusing.take()) {
      const { code, message, echo, delayMs } = refusal;
      const text = echo ? `${message} (Authorization: ${String(req.headers.authorization ?? '')})` : message;
      if (!delayMs) return fail(400, code, text);
      call.error = code;
      setTimeout(() => !res.destroyed && queryError(res, 400, code, text, XMLNS), delayMs);
      return;
    }
    if (call.action !== 'Publish' && call.action !== 'PublishBatch') return fail(400, 'InvalidAction', `action ${call.action} is not faked`);

    const topicArn = params.TopicArn ?? '';
    if (!/^arn:aws:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+(\.fifo)?$/.test(topicArn)) return fail(400, 'InvalidParameter', 'Invalid parameter: TopicArn');
    const fifo = topicArn.endsWith('.fifo');

    if (call.action === 'Publish') {
      const m = readMessage(params, '');
      const refused = checkMessage(m, fifo);
      if (refused) return fail(400, refused.code, refused.message);
      return queryResult(res, 'Publish', accept(m, topicArn, callIndex), XMLNS);
    }

    // PublishBatch: the members are numbered from 1 with no gap.
    const members = new Set<number>();
    for (const k of Object.keys(params)) {
      const m = ENTRY_KEY.exec(k);
      if (m) members.add(Number(m[1]));
    }
    if (members.size === 0) return fail(400, 'EmptyBatchRequest', "The batch request doesn't contain any entries.");
    if (members.size > MAX_BATCH_ENTRIES) return fail(400, 'TooManyEntriesInBatchRequest', 'The batch request contains more entries than permissible.');
    const entries: Array<{ id: string; m: MessageRequest }> = [];
    for (let n = 1; n <= members.size; n++) {
      if (!members.has(n)) return fail(400, 'InvalidParameter', `Invalid parameter: PublishBatchRequestEntries.member.${n} is missing`);
      const prefix = `PublishBatchRequestEntries.member.${n}.`;
      const id = params[`${prefix}Id`] ?? '';
      if (!ENTRY_ID.test(id)) return fail(400, 'InvalidBatchEntryId', "The Id of a batch entry in a batch request doesn't abide by the specification.");
      entries.push({ id, m: readMessage(params, prefix) });
    }
    if (new Set(entries.map((e) => e.id)).size !== entries.length) return fail(400, 'BatchEntryIdsNotDistinct', 'Two or more batch entries in the request have the same Id.');
    const total = entries.reduce((n, e) => n + batchBytes(e.m), 0);
    if (total > MAX_BATCH_BYTES) return fail(400, 'BatchRequestTooLong', 'The length of all the batch messages put together is more than the limit.');

    let successful = '';
    let failed = '';
    call.entries = [];
    for (const { id, m } of entries) {
      const refused = checkMessage(m, fifo);
      const scripted = refused ? undefined : scriptedFailure(m);
      const error = refused ? { code: refused.code, message: refused.message, senderFault: true } : scripted && { code: scripted.code, message: scripted.message ?? scripted.code, senderFault: scripted.senderFault };
      call.entries.push({ id, error: error?.code });
      if (error) {
        failed += `<member><Id>${xmlEscape(id)}</Id><Code>${xmlEscape(error.code)}</Code><Message>${xmlEscape(error.message)}</Message><SenderFault>${error.senderFault}</SenderFault></member>`;
      } else {
        successful += `<member><Id>${xmlEscape(id)}</Id>${accept(m, topicArn, callIndex, id)}</member>`;
      }
    }
    queryResult(res, 'PublishBatch', `<Successful>${successful}</Successful><Failed>${failed}</Failed>`, XMLNS);
  });

  return {
    url: server.url,
    calls,
    published,
    delivered: () => published.filter((p) => !p.duplicate),
    throttle: (n, skip) => throttle.set(n, skip),
    fail: (n, skip) => failing.set(n, skip),
    refuse: (n, code, message, skip, opts) => {
      refusal = { code, message, ...opts };
      refusing.set(n, skip);
    },
    hang: (n, skip) => hanging.set(n, skip),
    failEntries: (rule) => {
      let budget: Budget | undefined;
      if (rule.n !== undefined) {
        budget = new Budget();
        budget.set(rule.n, rule.skip);
      }
      entryRules.push({ ...rule, budget });
    },
    clearEntryFailures: () => {
      entryRules = [];
    },
    stall: (match) => {
      stalling = match;
    },
    close: () => server.close(),
  };
}
