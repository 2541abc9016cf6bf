/**
 * AWS CloudWatch Logs (falcosidekick's `aws.cloudwatchlogs.*`). Each event becomes one log event:
 * the message is the event JSON exactly as the webhook body (no newline), the timestamp is the
 * event's `time` in epoch milliseconds. A batch from the delivery worker (up to 10,000 events by
 * default) is sorted by timestamp and cut into PutLogEvents calls within AWS's limits.
 *
 * Differences from falcosidekick, all on purpose:
 * - batching (falcosidekick makes one call per event);
 * - with no `logstream`, each router instance writes to its own stream `<logstreamprefix>-<hostname>`
 *   (replicas do not share one), created on first use; an existing one is reused;
 * - a deleted stream (and, with `createloggroup`, group) is created again and the batch re-sent;
 * - an event over 256 KiB is shortened with a marker instead of failing the batch;
 * - events CloudWatch would refuse for their timestamp (older than 14 days, more than 2 hours
 *   ahead) get the current time instead, unless `clamptimestamps: false`; whatever CloudWatch
 *   still rejects (`rejectedLogEventsInfo`) is reported to the pipeline as refused, so it is
 *   dead-lettered (and can be re-queued) instead of silently missing.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  PutLogEventsCommand,
  type InputLogEvent,
  type RejectedLogEventsInfo,
} from '@aws-sdk/client-cloudwatch-logs';
import { OutputError, bool, eventTimeMs, fitEventJson, type OutputType, type Output, type StoredEvent, type SendContext, type OutputDeps } from '../sdk/index.ts';
import { awsSettingsShape, awsShared, AwsClient, AWS_SECRETS, classifyAwsError, awsErrorCode } from '../sdk/aws/index.ts';

/** PutLogEvents limits (CloudWatch Logs API reference, "PutLogEvents"). */
export const LIMITS = {
  events: 10_000,
  bytes: 1_048_576,
  /** Bytes counted per event on top of its UTF-8 message. */
  overhead: 26,
  /** Largest event, message plus overhead. */
  eventBytes: 262_144,
  /** A call may not span more than 24 hours; we keep it strictly below. */
  spanMs: 24 * 3_600_000,
  /** Older events are rejected (tooOld), as are those further ahead (tooNew). */
  maxAgeMs: 14 * 24 * 3_600_000,
  maxAheadMs: 2 * 3_600_000,
} as const;

/** Kept away from the edges of the accepted window, for clock skew and time in flight. */
const CLAMP_MARGIN_MS = 10 * 60_000;

const streamName = z
  .string()
  .max(512, { message: 'must be at most 512 characters' })
  .regex(/^[^:*]*$/, { message: 'may not contain ":" or "*"' });

const schema = z.object({
  ...awsSettingsShape,
  loggroup: z
    .string({ message: 'is required' })
    .min(1, { message: 'must not be empty' })
    .max(512, { message: 'must be at most 512 characters' })
    .describe('Enables the output: the log group. It must exist unless createloggroup is true.'),
  logstream: streamName.default('').describe('A fixed stream; empty means one stream per router instance, `<logstreamprefix>-<hostname>`, created on first use.'),
  logstreamprefix: streamName.default('falco-router').describe('Prefix of the per-instance stream name.'),
  createloggroup: bool.default(false).describe('Create the log group when it does not exist (needs logs:CreateLogGroup; it then never expires events).'),
  clamptimestamps: bool.default(true).describe('Write alerts CloudWatch would refuse for their age (over 14 days old, over 2 hours ahead) with the current time; the message keeps the original time.'),
});
type CloudWatchLogsConfig = z.infer<typeof schema>;

/**
 * What the output counts besides deliveries (falco_router_output_events_total{stat}): calls,
 * stored, rejectedTooOld, rejectedTooNew, rejectedExpired, truncated (shortened to fit 256 KiB),
 * clamped (written with the current time), recreated (a stream or group created again after use).
 */
interface Entry {
  timestamp: number;
  message: string;
  item: StoredEvent;
  /** Shortened to fit 256 KiB: its original size in bytes. */
  truncatedFrom?: number;
  /** Written with the current time: the event's own time. */
  clampedFrom?: string;
}

type Rejection = 'tooOld' | 'expired' | 'tooNew';

/** Why CloudWatch did not store an event of an accepted call; the dead letter's reason. */
const REJECTED: Record<Rejection, { stat: string; error: OutputError }> = {
  tooOld: { stat: 'rejectedTooOld', error: rejection('its timestamp is more than 14 days old (tooOldLogEventEndIndex)') },
  expired: { stat: 'rejectedExpired', error: rejection("its timestamp is older than the log group's retention (expiredLogEventEndIndex)") },
  tooNew: { stat: 'rejectedTooNew', error: rejection('its timestamp is more than 2 hours ahead (tooNewLogEventStartIndex)') },
};

function rejection(why: string): OutputError {
  // CloudWatch would reject it again: not retried, but dead-lettered so it can be re-queued.
  return new OutputError(`CloudWatch Logs did not store the event: ${why}`, { reason: 'clientError', retryable: false, status: 'RejectedLogEvent' });
}

class CloudWatchLogsOutput implements Output {
  readonly stream: string;
  readonly #logger: OutputDeps['logger'];
  /** Built by setup(), with the credentials it resolved. */
  readonly #aws = new AwsClient('CloudWatch Logs', (o) => new CloudWatchLogsClient(o));
  /** Set once the stream is known to exist (created, or found already there). */
  #ready: Promise<void> | undefined;
  #recreating: Promise<void> | undefined;

  constructor(
    private readonly config: CloudWatchLogsConfig,
    private readonly deps: OutputDeps,
  ) {
    this.#logger = deps.logger;
    if (config.logstream !== '') {
      this.stream = config.logstream;
      // A configured stream is expected to exist (as in falcosidekick); if it does not, the first
      // PutLogEvents gets ResourceNotFoundException and the stream is created then.
      this.#ready = Promise.resolve();
    } else {
      const host = hostname().replace(/[:*]/g, '_') || 'unknown-host';
      this.stream = `${config.logstreamprefix}-${host}`.slice(0, 512);
    }
  }

  setup(signal: AbortSignal): Promise<void> {
    return this.#aws.setup(this.deps.name, this.config, this.#logger, signal);
  }

  get #client(): CloudWatchLogsClient {
    return this.#aws.client;
  }

  async send(batch: readonly StoredEvent[], ctx: SendContext): Promise<void> {
    const entries = this.#entries(batch);
    await this.#ensureStream(ctx.signal);
    const calls = split(entries);
    for (const call of calls) {
      const rejected = await this.#put(call, ctx.signal);
      // Reported call by call: when a later call fails (or the attempt times out), the retry
      // sends only what has not been written yet.
      const stored = rejected.size === 0 ? call : call.filter((e) => !rejected.has(e));
      for (const kind of ['tooOld', 'expired', 'tooNew'] as const) {
        const events = call.filter((e) => rejected.get(e) === kind).map((e) => e.item);
        if (events.length > 0) ctx.failed(events, REJECTED[kind].error);
      }
      ctx.delivered(stored.map((e) => e.item));
      this.#reportAltered(stored);
    }
    if (this.deps.debug) this.#logger.debug({ events: entries.length, calls: calls.length, stream: this.stream }, 'CloudWatch Logs: events sent');
  }

  /** Counted and logged once written, so a retried batch does not count them twice. */
  #reportAltered(stored: readonly Entry[]): void {
    const clamped: string[] = [];
    for (const e of stored) {
      if (e.clampedFrom !== undefined) clamped.push(e.clampedFrom);
      if (e.truncatedFrom === undefined) continue;
      this.deps.count('truncated');
      this.#logger.warn(
        { uuid: e.item.uuid, rule: e.item.event.rule, bytes: e.truncatedFrom },
        `CloudWatch Logs: event larger than 256 KiB shortened with a "…[truncated]" marker`,
      );
    }
    if (clamped.length > 0) {
      this.deps.count('clamped', clamped.length);
      this.#logger.warn(
        { events: clamped.length, times: clamped.slice(0, 5) },
        `CloudWatch Logs: ${clamped.length} event(s) with a time more than 14 days old or 2 hours ahead written with the current time (their message keeps the original time)`,
      );
    }
  }

  /** Messages and timestamps, sorted, each within the per-event limit. */
  #entries(batch: readonly StoredEvent[]): Entry[] {
    const now = Date.now();
    const oldest = now - LIMITS.maxAgeMs + CLAMP_MARGIN_MS;
    const newest = now + LIMITS.maxAheadMs - CLAMP_MARGIN_MS;
    const entries: Entry[] = [];
    for (const item of batch) {
      const time = item.time;
      const entry: Entry = { timestamp: eventTimeMs(time), message: item.json, item };
      if (!Number.isFinite(entry.timestamp)) entry.timestamp = now;
      if (this.config.clamptimestamps && (entry.timestamp < oldest || entry.timestamp > newest)) {
        entry.clampedFrom = time;
        entry.timestamp = now;
      }
      const fitted = fitEventJson(item, LIMITS.eventBytes - LIMITS.overhead);
      if (fitted.truncated) entry.truncatedFrom = Buffer.byteLength(item.json, 'utf8');
      entry.message = fitted.json;
      entries.push(entry);
    }
    // Array.prototype.sort is stable: events with one timestamp keep their queue order.
    entries.sort((a, b) => a.timestamp - b.timestamp);
    return entries;
  }

  /** One PutLogEvents call; answers the events CloudWatch accepted the call for but did not store. */
  async #put(events: Entry[], signal: AbortSignal): Promise<Map<Entry, Rejection>> {
    const logEvents: InputLogEvent[] = events.map((e) => ({ timestamp: e.timestamp, message: e.message }));
    const command = () => new PutLogEventsCommand({ logGroupName: this.config.loggroup, logStreamName: this.stream, logEvents });
    let out;
    try {
      out = await this.#client.send(command(), { abortSignal: signal });
    } catch (err) {
      if (awsErrorCode(err) !== 'ResourceNotFoundException') throw classifyAwsError(err, `CloudWatch Logs PutLogEvents to ${this.#where()}`);
      this.#logger.warn({ group: this.config.loggroup, stream: this.stream }, `CloudWatch Logs: ${(err as Error).message} Creating it again.`);
      await this.#recreate(signal);
      try {
        out = await this.#client.send(command(), { abortSignal: signal });
      } catch (err2) {
        const error = classifyAwsError(err2, `CloudWatch Logs PutLogEvents to ${this.#where()}`);
        // The stream has just been created or found: CloudWatch Logs is eventually consistent and
        // may not see it for a moment. Retried, not dead-lettered as a 400 would be.
        if (awsErrorCode(err2) === 'ResourceNotFoundException') throw new OutputError(`${error.message} (right after creating it)`, { reason: 'other', retryable: true, status: error.status });
        throw error;
      }
    }
    this.deps.count('calls');
    const rejected = this.#rejected(out.rejectedLogEventsInfo, events);
    this.deps.count('stored', events.length - rejected.size);
    return rejected;
  }

  /**
   * The events CloudWatch accepted the call for but did not store, by reason: counted, logged, and
   * reported as refused (dead-lettered). The indexes are ranges of the sorted call: [0, end) too
   * old or past the retention (they may overlap), [start, n) too far ahead.
   */
  #rejected(info: RejectedLogEventsInfo | undefined, events: Entry[]): Map<Entry, Rejection> {
    const rejected = new Map<Entry, Rejection>();
    if (!info) return rejected;
    const n = events.length;
    const tooOldEnd = Math.min(n, info.tooOldLogEventEndIndex ?? 0);
    const expiredEnd = Math.min(n, info.expiredLogEventEndIndex ?? 0);
    const tooNewStart = Math.max(0, info.tooNewLogEventStartIndex ?? n);
    events.forEach((e, i) => {
      if (i < tooOldEnd) rejected.set(e, 'tooOld');
      else if (i < expiredEnd) rejected.set(e, 'expired');
      else if (i >= tooNewStart) rejected.set(e, 'tooNew');
    });
    if (rejected.size === 0) return rejected;
    const counts: Record<Rejection, number> = { tooOld: 0, expired: 0, tooNew: 0 };
    for (const kind of rejected.values()) counts[kind]++;
    for (const kind of ['tooOld', 'expired', 'tooNew'] as const) this.deps.count(REJECTED[kind].stat, counts[kind]);
    const sample = [...rejected.keys()].slice(0, 5).map((e) => ({ uuid: e.item.uuid, timestamp: new Date(e.timestamp).toISOString() }));
    this.#logger.warn(
      { group: this.config.loggroup, stream: this.stream, rejected: rejected.size, ...counts, sent: n, sample },
      `CloudWatch Logs rejected ${rejected.size} of ${n} events (too old: ${counts.tooOld}, past the group's retention: ${counts.expired}, too far ahead: ${counts.tooNew}); they are dead-lettered`,
    );
    return rejected;
  }

  /**
   * Creates this instance's own stream once, on first use; an existing stream is reused. Not in
   * setup(): a pod's name changes with each restart, so a stream made at start would leave an
   * empty one behind for every pod that never had an alert. The first caller's signal bounds the
   * creation, so a hung call ends with that attempt (a send waiting on it fails too and is
   * retried) instead of holding every later attempt.
   */
  #ensureStream(signal: AbortSignal): Promise<void> {
    this.#ready ??= this.#createStream(signal, false).catch((err) => {
      this.#ready = undefined; // the next attempt tries again
      throw err;
    });
    return this.#ready;
  }

  /** After ResourceNotFoundException: the stream (or group) was deleted; concurrent sends share one re-creation. */
  #recreate(signal: AbortSignal): Promise<void> {
    this.#recreating ??= this.#createStream(signal, true).finally(() => {
      this.#recreating = undefined;
    });
    return this.#recreating;
  }

  async #createStream(signal: AbortSignal, afterNotFound: boolean): Promise<void> {
    const { loggroup } = this.config;
    const create = () => this.#client.send(new CreateLogStreamCommand({ logGroupName: loggroup, logStreamName: this.stream }), { abortSignal: signal });
    try {
      await create();
      if (afterNotFound) this.deps.count('recreated');
      this.#logger.info({ group: loggroup, stream: this.stream }, `CloudWatch Logs: created log stream ${this.stream}`);
      return;
    } catch (err) {
      const code = awsErrorCode(err);
      if (code === 'ResourceAlreadyExistsException') {
        this.#logger.info({ group: loggroup, stream: this.stream }, `CloudWatch Logs: log stream ${this.stream} already exists, reusing it`);
        return;
      }
      if (code !== 'ResourceNotFoundException') throw classifyAwsError(err, `CloudWatch Logs CreateLogStream ${this.#where()}`);
    }
    // The group is missing.
    if (!this.config.createloggroup) {
      throw new OutputError(`CloudWatch Logs: log group "${loggroup}" does not exist; create it, or set createloggroup: true`, {
        reason: 'clientError',
        retryable: false,
        status: 'ResourceNotFoundException',
      });
    }
    try {
      await this.#client.send(new CreateLogGroupCommand({ logGroupName: loggroup }), { abortSignal: signal });
      this.#logger.info({ group: loggroup }, `CloudWatch Logs: created log group ${loggroup}`);
    } catch (err) {
      if (awsErrorCode(err) !== 'ResourceAlreadyExistsException') throw classifyAwsError(err, `CloudWatch Logs CreateLogGroup ${loggroup}`);
    }
    try {
      await create();
      if (afterNotFound) this.deps.count('recreated');
      this.#logger.info({ group: loggroup, stream: this.stream }, `CloudWatch Logs: created log stream ${this.stream}`);
    } catch (err) {
      if (awsErrorCode(err) !== 'ResourceAlreadyExistsException') throw classifyAwsError(err, `CloudWatch Logs CreateLogStream ${this.#where()}`);
    }
  }

  #where(): string {
    return `${this.config.loggroup}/${this.stream}`;
  }

  async close(): Promise<void> {
    this.#aws.close();
  }
}

/** Cuts sorted entries into PutLogEvents calls: ≤10,000 events, ≤1 MiB with 26 bytes each, span < 24 h. */
export function split<T extends { timestamp: number; message: string }>(sorted: readonly T[]): T[][] {
  const calls: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const e of sorted) {
    const size = Buffer.byteLength(e.message, 'utf8') + LIMITS.overhead;
    if (cur.length > 0 && (cur.length >= LIMITS.events || bytes + size > LIMITS.bytes || e.timestamp - cur[0].timestamp >= LIMITS.spanMs)) {
      calls.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(e);
    bytes += size;
  }
  if (cur.length > 0) calls.push(cur);
  return calls;
}

export const awsCloudWatchLogs: OutputType<typeof schema> = {
  type: 'awscloudwatchlogs',
  schema,
  secrets: [...AWS_SECRETS],
  // The pipeline hands up to 10,000 events per send; send() cuts them to AWS's limits.
  // Calls to one stream may run concurrently (CloudWatch no longer uses sequence tokens).
  defaults: { maxBatch: 10_000, concurrency: 2, linger: 100 },
  falcosidekick: { prefix: 'aws.cloudwatchlogs', enabledBy: 'loggroup', shared: awsShared },
  create: (config, deps) => new CloudWatchLogsOutput(config, deps),
};
