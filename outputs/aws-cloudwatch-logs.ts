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
 *   still rejects (`rejectedLogEventsInfo`) is logged as a warning and counted in `stats`.
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
import type { OutputType, Output, StoredEvent, SendContext, OutputDeps } from './types.ts';
import { OutputError } from '../src/delivery/output-error.ts';
import { eventTimeMs } from '../src/event/falco-event.ts';
import { bool } from '../src/config/fields.ts';
import { awsSettingsShape, setupAws, AWS_SHARED_KEYS, AWS_OUTPUT_KEYS, AWS_SECRETS, type AwsSetup } from './aws/credentials.ts';
import { classifyAwsError, awsErrorCode } from './aws/errors.ts';
import { fitEventJson } from './aws/truncate.ts';

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
/** Events remembered as stored when a multi-call send fails part way (so a retry skips them). */
const REMEMBER_MAX = 100_000;

const streamName = z
  .string()
  .max(512, { message: 'must be at most 512 characters' })
  .regex(/^[^:*]*$/, { message: 'may not contain ":" or "*"' });

const schema = z.object({
  ...awsSettingsShape,
  /** Enables the output. The group must exist unless createloggroup is true. */
  loggroup: z.string({ message: 'is required' }).min(1, { message: 'must not be empty' }).max(512, { message: 'must be at most 512 characters' }),
  /** Fixed stream; empty means one stream per router instance, `<logstreamprefix>-<hostname>`. */
  logstream: streamName.default(''),
  logstreamprefix: streamName.default('falco-router'),
  /** Create the log group when it does not exist (needs logs:CreateLogGroup). */
  createloggroup: bool.default(false),
  /** Write events CloudWatch would reject for their age with the current time instead. */
  clamptimestamps: bool.default(true),
});
type CloudWatchLogsConfig = z.infer<typeof schema>;

/** Counters for what CloudWatch did not take as sent; read them for metrics. */
export interface CloudWatchLogsStats {
  /** Successful PutLogEvents calls. */
  calls: number;
  /** Events CloudWatch stored (sent minus rejected). */
  stored: number;
  /** Events reported in rejectedLogEventsInfo, by kind. */
  rejectedTooOld: number;
  rejectedTooNew: number;
  rejectedExpired: number;
  /** Events shortened to fit 256 KiB. */
  truncated: number;
  /** Events written with the current time because theirs was outside CloudWatch's window. */
  clamped: number;
  /** Streams (or groups) created after first use because they were missing. */
  recreated: number;
}

interface Entry {
  timestamp: number;
  message: string;
  uuid: string;
}

class CloudWatchLogsOutput implements Output {
  readonly stats: CloudWatchLogsStats = { calls: 0, stored: 0, rejectedTooOld: 0, rejectedTooNew: 0, rejectedExpired: 0, truncated: 0, clamped: 0, recreated: 0 };
  readonly stream: string;
  readonly #client: CloudWatchLogsClient;
  readonly #logger: OutputDeps['logger'];
  /** Set once the stream is known to exist (created, or found already there). */
  #ready: Promise<void> | undefined;
  #recreating: Promise<void> | undefined;
  /** uuids stored by an earlier attempt whose later calls failed. */
  readonly #stored = new Set<string>();

  constructor(
    readonly name: string,
    private readonly config: CloudWatchLogsConfig,
    private readonly setup: AwsSetup,
    private readonly deps: OutputDeps,
  ) {
    this.#client = new CloudWatchLogsClient({ ...setup.client });
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

  async send(batch: readonly StoredEvent[], ctx: SendContext): Promise<void> {
    const { entries, skipped, clamped, truncated } = this.#entries(batch);
    if (entries.length > 0) {
      await this.#ensureStream(ctx.signal);
      const calls = split(entries);
      const storedNow: string[] = [];
      for (const call of calls) {
        try {
          await this.#put(call, ctx.signal);
        } catch (err) {
          // The calls before this one are stored; remember them so that the worker's retry of
          // the whole batch does not write them twice.
          this.#remember(storedNow);
          throw err;
        }
        for (const e of call) if (e.uuid !== '') storedNow.push(e.uuid);
      }
      if (this.deps.debug) this.#logger.debug({ events: entries.length, calls: calls.length, stream: this.stream }, 'CloudWatch Logs: events sent');
    }
    for (const u of skipped) this.#stored.delete(u);
    // Reported once the events are written, so a retried batch is not counted twice.
    for (const t of truncated) {
      this.stats.truncated++;
      this.#logger.warn(t, `CloudWatch Logs: event larger than 256 KiB shortened with a "…[truncated]" marker`);
    }
    if (clamped.length > 0) {
      this.stats.clamped += clamped.length;
      this.#logger.warn(
        { events: clamped.length, times: clamped.slice(0, 5) },
        `CloudWatch Logs: ${clamped.length} event(s) with a time more than 14 days old or 2 hours ahead written with the current time (their message keeps the original time)`,
      );
    }
  }

  /** Messages and timestamps, sorted, each within the per-event limit. */
  #entries(batch: readonly StoredEvent[]): { entries: Entry[]; skipped: string[]; clamped: string[]; truncated: Array<Record<string, unknown>> } {
    const now = Date.now();
    const oldest = now - LIMITS.maxAgeMs + CLAMP_MARGIN_MS;
    const newest = now + LIMITS.maxAheadMs - CLAMP_MARGIN_MS;
    const clamped: string[] = [];
    const entries: Entry[] = [];
    const skipped: string[] = [];
    const truncated: Array<Record<string, unknown>> = [];
    for (const item of batch) {
      const { uuid, time } = quickFields(item);
      if (uuid !== '' && this.#stored.has(uuid)) {
        skipped.push(uuid);
        continue;
      }
      let timestamp = eventTimeMs(time);
      if (!Number.isFinite(timestamp)) timestamp = now;
      if (this.config.clamptimestamps && (timestamp < oldest || timestamp > newest)) {
        clamped.push(time);
        timestamp = now;
      }
      const fitted = fitEventJson(item, LIMITS.eventBytes - LIMITS.overhead);
      if (fitted.truncated) truncated.push({ uuid, rule: item.event.rule, bytes: Buffer.byteLength(item.json, 'utf8') });
      entries.push({ timestamp, message: fitted.json, uuid });
    }
    // Array.prototype.sort is stable: events with one timestamp keep their queue order.
    entries.sort((a, b) => a.timestamp - b.timestamp);
    return { entries, skipped, clamped, truncated };
  }

  async #put(events: Entry[], signal: AbortSignal): Promise<void> {
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
        throw classifyAwsError(err2, `CloudWatch Logs PutLogEvents to ${this.#where()}`);
      }
    }
    this.stats.calls++;
    const rejected = this.#countRejected(out.rejectedLogEventsInfo, events);
    this.stats.stored += events.length - rejected;
  }

  /** Logs and counts what CloudWatch accepted the call for but did not store. */
  #countRejected(info: RejectedLogEventsInfo | undefined, events: Entry[]): number {
    if (!info) return 0;
    const n = events.length;
    const tooOld = Math.min(n, info.tooOldLogEventEndIndex ?? 0);
    const expired = Math.min(n, info.expiredLogEventEndIndex ?? 0);
    const tooNew = info.tooNewLogEventStartIndex !== undefined ? Math.max(0, n - info.tooNewLogEventStartIndex) : 0;
    // Indexes are ranges from the start (old, expired) and to the end (new); old and expired overlap.
    const total = Math.min(n, Math.max(tooOld, expired) + tooNew);
    if (total === 0) return 0;
    this.stats.rejectedTooOld += tooOld;
    this.stats.rejectedExpired += expired;
    this.stats.rejectedTooNew += tooNew;
    const sample = [
      ...events.slice(0, Math.max(tooOld, expired)).slice(0, 3),
      ...(tooNew > 0 ? events.slice(n - tooNew).slice(0, 3) : []),
    ].map((e) => ({ uuid: e.uuid, timestamp: new Date(e.timestamp).toISOString() }));
    this.#logger.warn(
      { group: this.config.loggroup, stream: this.stream, rejected: total, tooOld, expired, tooNew, sent: n, sample },
      `CloudWatch Logs rejected ${total} of ${n} events (too old: ${tooOld}, past the group's retention: ${expired}, too far ahead: ${tooNew}); they are not stored and will not be retried`,
    );
    return total;
  }

  /** Creates this instance's own stream once (first use); an existing stream is reused. */
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
      if (afterNotFound) this.stats.recreated++;
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
      if (afterNotFound) this.stats.recreated++;
      this.#logger.info({ group: loggroup, stream: this.stream }, `CloudWatch Logs: created log stream ${this.stream}`);
    } catch (err) {
      if (awsErrorCode(err) !== 'ResourceAlreadyExistsException') throw classifyAwsError(err, `CloudWatch Logs CreateLogStream ${this.#where()}`);
    }
  }

  #remember(uuids: string[]): void {
    for (const u of uuids) this.#stored.add(u);
    // Bounded: an event forgotten here is at worst written twice (at-least-once delivery).
    if (this.#stored.size > REMEMBER_MAX) {
      let drop = this.#stored.size - REMEMBER_MAX;
      for (const u of this.#stored) {
        if (drop-- <= 0) break;
        this.#stored.delete(u);
      }
    }
  }

  #where(): string {
    return `${this.config.loggroup}/${this.stream}`;
  }

  async close(): Promise<void> {
    this.#client.destroy();
    this.setup.close();
  }
}

const UUID_AT_START = /^\{"uuid":"([^"\\]*)"/;
const TIME_VALUE = /^[0-9T:.+\-Z]+$/;

/**
 * uuid and time without parsing the whole event (a 10,000-event batch would otherwise spend most
 * of its time in the lossless parser). Stored events are written by serializeEvent: `uuid` comes
 * first and the top-level `time` before output_fields, and inside a JSON string a `"` is always
 * escaped, so the first `","time":"` is the top-level key. Anything unexpected takes the full parse.
 */
export function quickFields(item: StoredEvent): { uuid: string; time: string } {
  const json = item.json;
  const u = UUID_AT_START.exec(json);
  const at = json.indexOf('","time":"');
  if (u && at > 0) {
    const start = at + 10;
    const end = json.indexOf('"', start);
    const time = json.slice(start, end);
    if (end > start && end - start <= 40 && TIME_VALUE.test(time)) return { uuid: u[1], time };
  }
  return { uuid: item.event.uuid, time: item.event.time };
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

export const awsCloudWatchLogs: OutputType<CloudWatchLogsConfig> = {
  type: 'awscloudwatchlogs',
  schema,
  secrets: [...AWS_SECRETS],
  // The worker hands up to 10,000 events per send; send() cuts them to AWS's limits.
  // Calls to one stream may run concurrently (CloudWatch no longer uses sequence tokens).
  defaults: { maxBatch: 10_000, concurrency: 2, linger: 100 },
  falcosidekick: {
    prefix: 'aws.cloudwatchlogs',
    enabledBy: 'loggroup',
    keys: {
      loggroup: 'string',
      logstream: 'string',
      logstreamprefix: 'string',
      createloggroup: 'string',
      clamptimestamps: 'string',
      ...AWS_OUTPUT_KEYS,
    },
    shared: AWS_SHARED_KEYS,
  },
  async create(name, config, deps) {
    const setup = await setupAws(name, config, deps.logger);
    return new CloudWatchLogsOutput(name, config, setup, deps);
  },
};
