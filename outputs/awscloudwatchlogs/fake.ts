/**
 * A local CloudWatch Logs that speaks the real wire protocol (AWS JSON 1.1: `POST /`,
 * `X-Amz-Target: Logs_20140328.<Operation>`, `application/x-amz-json-1.1`, errors as
 * `{"__type": …, "message": …}` with status 400) for CreateLogGroup, CreateLogStream,
 * DescribeLogStreams and PutLogEvents. It enforces PutLogEvents' documented limits, so an adapter
 * that breaks one fails here as it would on AWS:
 *   - at most 10,000 events and 1,048,576 bytes (UTF-8 message bytes + 26 per event) per call;
 *   - events in chronological order, spanning at most 24 hours;
 *   - each event at most 256 KiB (message + 26 bytes);
 *   - events older than 14 days, older than the group's retention, or more than 2 hours ahead
 *     are not stored but reported in `rejectedLogEventsInfo`, as AWS does.
 * It can throttle the next N calls, fail them with a 500, refuse them (a 400 that echoes the
 * request's Authorization header, as a careless proxy or service would), hold them without an
 * answer, and delete streams or groups.
 */
import type { ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { startFakeServer, Budget, type FakeRequest } from '../sdk/testkit/aws-fake.ts';

export const MAX_EVENTS = 10_000;
export const MAX_BYTES = 1_048_576;
export const EVENT_OVERHEAD = 26;
export const MAX_EVENT_BYTES = 262_144;
export const DAY_MS = 86_400_000;

export interface LogEvent {
  timestamp: number;
  message: string;
}

export interface LogsCall {
  op: string;
  body: Record<string, any>;
  accessKeyId: string;
  sessionToken?: string;
  /** The error type answered ('hung' for a call held without an answer), or undefined for success. */
  error?: string;
  contentType?: string;
}

export interface LogsFake {
  url: string;
  calls: LogsCall[];
  /** Calls of one operation (successful ones only when ok is true). */
  ops(op: string, ok?: boolean): LogsCall[];
  /** Stored events of a stream, in arrival order. */
  events(group: string, stream: string): LogEvent[];
  streams(group: string): string[];
  hasGroup(group: string): boolean;
  createGroup(group: string): void;
  /** The group's retention (PutRetentionPolicy): older events are rejected as expired. */
  setRetention(group: string, days: number): void;
  createStream(group: string, stream: string): void;
  deleteStream(group: string, stream: string): void;
  deleteGroup(group: string): void;
  /** The next n calls, any operation, after `skip` that pass, answer a throttling error. */
  throttle(n: number, skip?: number): void;
  /** The next n calls (after `skip` that pass) answer a 500. */
  fail(n: number, skip?: number): void;
  /** The next n calls (after `skip` that pass) answer AccessDeniedException, echoing the Authorization header. */
  refuse(n: number, skip?: number): void;
  /** The next n calls (after `skip` that pass) get no answer and store nothing; the client must give up. */
  hang(n: number, skip?: number): void;
  /**
   * The next n PutLogEvents to a stream that exists answer ResourceNotFoundException, as AWS may
   * right after CreateLogStream (CloudWatch Logs is eventually consistent).
   */
  lag(n: number): void;
  close(): Promise<void>;
}

export async function startLogsFake(opts: { groups?: string[] } = {}): Promise<LogsFake> {
  const groups = new Map<string, Map<string, LogEvent[]>>();
  for (const g of opts.groups ?? []) groups.set(g, new Map());
  const retention = new Map<string, number>();
  const calls: LogsCall[] = [];
  const throttle = new Budget();
  const failing = new Budget();
  const refusing = new Budget();
  const hanging = new Budget();
  const lagging = new Budget();

  const reply = (res: ServerResponse, call: LogsCall, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() });
    res.end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, call: LogsCall, type: string, message: string, status = 400) => {
    call.error = type;
    reply(res, call, status, { __type: type, message });
  };

  const server = await startFakeServer((req: FakeRequest, res) => {
    const target = String(req.headers['x-amz-target'] ?? '');
    const op = target.startsWith('Logs_20140328.') ? target.slice('Logs_20140328.'.length) : target;
    let body: Record<string, any> = {};
    try {
      body = req.body === '' ? {} : JSON.parse(req.body);
    } catch {
      body = {};
    }
    const call: LogsCall = { op, body, accessKeyId: req.accessKeyId, sessionToken: req.sessionToken, contentType: req.headers['content-type'] };
    calls.push(call);
    if (!target.startsWith('Logs_20140328.') || req.headers['content-type'] !== 'application/x-amz-json-1.1') {
      return error(res, call, 'UnknownOperationException', `unexpected target ${target} / content-type ${req.headers['content-type']}`);
    }
    if (!/^AWS4-HMAC-SHA256 Credential=/.test(String(req.headers.authorization ?? ''))) {
      return error(res, call, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
    }
    if (hanging.take()) {
      call.error = 'hung';
      return; // closeAllConnections() on close() ends it, or the client's abort does
    }
    if (refusing.take()) {
      return error(res, call, 'AccessDeniedException', `User is not authorized to perform: logs:${op} (request Authorization: ${req.headers.authorization})`);
    }
    if (throttle.take()) return error(res, call, 'ThrottlingException', 'Rate exceeded');
    if (failing.take()) return error(res, call, 'ServiceUnavailableException', 'The service cannot complete the request.', 500);

    const group = body.logGroupName as string;
    const stream = body.logStreamName as string;
    switch (op) {
      case 'CreateLogGroup': {
        if (groups.has(group)) return error(res, call, 'ResourceAlreadyExistsException', 'The specified log group already exists');
        groups.set(group, new Map());
        return reply(res, call, 200, {});
      }
      case 'CreateLogStream': {
        const g = groups.get(group);
        if (!g) return error(res, call, 'ResourceNotFoundException', 'The specified log group does not exist.');
        if (g.has(stream)) return error(res, call, 'ResourceAlreadyExistsException', 'The specified log stream already exists');
        g.set(stream, []);
        return reply(res, call, 200, {});
      }
      case 'DescribeLogStreams': {
        const g = groups.get(group);
        if (!g) return error(res, call, 'ResourceNotFoundException', 'The specified log group does not exist.');
        const prefix = (body.logStreamNamePrefix as string | undefined) ?? '';
        const logStreams = [...g.keys()]
          .filter((s) => s.startsWith(prefix))
          .sort()
          .map((s) => ({ logStreamName: s, creationTime: 0, arn: `arn:aws:logs:us-east-1:123456789012:log-group:${group}:log-stream:${s}` }));
        return reply(res, call, 200, { logStreams });
      }
      case 'PutLogEvents': {
        const events = (body.logEvents ?? []) as LogEvent[];
        const problem = checkBatch(events);
        if (problem) return error(res, call, 'InvalidParameterException', problem);
        const g = groups.get(group);
        if (!g) return error(res, call, 'ResourceNotFoundException', 'The specified log group does not exist.');
        const s = g.get(stream);
        if (!s || lagging.take()) return error(res, call, 'ResourceNotFoundException', 'The specified log stream does not exist.');
        const now = Date.now();
        let tooOldEnd = 0;
        while (tooOldEnd < events.length && events[tooOldEnd].timestamp < now - 14 * DAY_MS) tooOldEnd++;
        const days = retention.get(group);
        let expiredEnd = 0;
        while (days !== undefined && expiredEnd < events.length && events[expiredEnd].timestamp < now - days * DAY_MS) expiredEnd++;
        const head = Math.max(tooOldEnd, expiredEnd);
        let tooNewStart = events.length;
        while (tooNewStart > head && events[tooNewStart - 1].timestamp > now + 2 * 3_600_000) tooNewStart--;
        for (let i = head; i < tooNewStart; i++) s.push({ timestamp: events[i].timestamp, message: events[i].message });
        const rejected: Record<string, number> = {};
        if (tooOldEnd > 0) rejected.tooOldLogEventEndIndex = tooOldEnd;
        if (expiredEnd > 0) rejected.expiredLogEventEndIndex = expiredEnd;
        if (tooNewStart < events.length) rejected.tooNewLogEventStartIndex = tooNewStart;
        return reply(res, call, 200, Object.keys(rejected).length > 0 ? { rejectedLogEventsInfo: rejected } : {});
      }
      default:
        return error(res, call, 'UnknownOperationException', `operation ${op} is not faked`);
    }
  });

  return {
    url: server.url,
    calls,
    ops: (op, ok = true) => calls.filter((c) => c.op === op && (!ok || c.error === undefined)),
    events: (group, stream) => groups.get(group)?.get(stream) ?? [],
    streams: (group) => [...(groups.get(group)?.keys() ?? [])],
    hasGroup: (group) => groups.has(group),
    createGroup: (group) => void (groups.has(group) || groups.set(group, new Map())),
    setRetention: (group, days) => void retention.set(group, days),
    createStream: (group, stream) => void groups.get(group)?.set(stream, []),
    deleteStream: (group, stream) => void groups.get(group)?.delete(stream),
    deleteGroup: (group) => void groups.delete(group),
    throttle: (n, skip) => throttle.set(n, skip),
    fail: (n, skip) => failing.set(n, skip),
    refuse: (n, skip) => refusing.set(n, skip),
    hang: (n, skip) => hanging.set(n, skip),
    lag: (n) => lagging.set(n),
    close: () => server.close(),
  };
}

/** PutLogEvents' hard limits: a batch breaking one is refused whole (InvalidParameterException). */
export function checkBatch(events: LogEvent[]): string | undefined {
  if (events.length === 0) return '1 validation error detected: Value at \'logEvents\' failed to satisfy constraint: Member must have length greater than or equal to 1';
  if (events.length > MAX_EVENTS) {
    return `1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to ${MAX_EVENTS}`;
  }
  let bytes = 0;
  for (const e of events) {
    if (typeof e.timestamp !== 'number' || typeof e.message !== 'string' || e.message === '') return 'each log event needs a timestamp and a non-empty message';
    const size = Buffer.byteLength(e.message, 'utf8') + EVENT_OVERHEAD;
    if (size > MAX_EVENT_BYTES) return `Log event too large: ${size} bytes exceeds limit of ${MAX_EVENT_BYTES}`;
    bytes += size;
  }
  if (bytes > MAX_BYTES) return `Upload too large: ${bytes} bytes exceeds limit of ${MAX_BYTES}`;
  for (let i = 1; i < events.length; i++) {
    if (events[i].timestamp < events[i - 1].timestamp) return 'Log events in a single PutLogEvents request must be in chronological order.';
  }
  if (events[events.length - 1].timestamp - events[0].timestamp > DAY_MS) {
    return 'The batch of log events in a single PutLogEvents request cannot span more than 24 hours.';
  }
  return undefined;
}

/** The bytes PutLogEvents counts for a batch. */
export function batchBytes(events: LogEvent[]): number {
  return events.reduce((n, e) => n + Buffer.byteLength(e.message, 'utf8') + EVENT_OVERHEAD, 0);
}
