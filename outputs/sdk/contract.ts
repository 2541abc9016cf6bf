/**
 * The output contract. An adapter formats a batch and makes the network call, and says what went
 * out; batching, timeouts, retries, rate limits, dead letters, redaction, metrics and logs live in
 * the pipeline (src/pipeline), once for every output.
 */
import type { z } from 'zod';
import type { StoredEvent } from '../../src/event/stored-event.ts';
import type { OutputError } from '../../src/errors.ts';
import type { ClientTlsFiles } from './http.ts';
import type { SummaryGroup } from '../../src/pipeline/summary.ts';

export interface SendContext {
  /** Aborted when the attempt times out or the router stops. */
  readonly signal: AbortSignal;
  /** 1 for a batch's first attempt. */
  readonly attempt: number;
  /**
   * For sends of several calls: these events went out, whatever happens to the rest. The pipeline
   * never sends them again, even when the send then fails or times out.
   */
  delivered(events: readonly StoredEvent[]): void;
  /**
   * These events did not go out: the pipeline retries them when `error.retryable`, and dead-letters
   * them with `error`'s message when not (the others of the batch are not held back).
   */
  failed(events: readonly StoredEvent[], error: OutputError): void;
}

/**
 * One output instance. A send that resolves delivered every event it did not report as failed; a
 * send that throws (or times out) failed every event it did not report, with that error.
 */
export interface Output {
  /**
   * I/O the output needs before its first send (credentials, an identity check, certificate
   * files). The pipeline runs it, and on failure keeps the instance's alerts queued and runs it
   * again with backoff until it passes. Throw an Error that names the setting to fix.
   */
  setup?(signal: AbortSignal): Promise<void>;
  send(batch: readonly StoredEvent[], ctx: SendContext): Promise<void>;
  /**
   * One message that stands for alerts not sent one by one: the backlog beyond
   * `delivery.summarizeabove` (grouped by rule), and what dedup and throttle windows held back
   * (one group per key). All or nothing: what ctx reports per event is ignored. Without it, the
   * pipeline sends each group as one alert through send(), and what send() reports for that alert
   * (ctx.delivered/failed) is the group's outcome: a retry resends only the groups that failed.
   */
  sendSummary?(groups: readonly SummaryGroup[], ctx: SendContext): Promise<void>;
  close?(): Promise<void>;
}

/** A logger whose text the pipeline has already cleared of the instance's secrets. */
export interface OutputLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

export interface OutputDeps {
  /** The instance's name; logs already carry it. */
  name: string;
  logger: OutputLogger;
  /** Log payloads (the global `debug` setting). */
  debug: boolean;
  /** Client certificate files shared by outputs that speak TLS (mutualtlsclient.*, tlsclient.cacertfile). */
  tls: ClientTlsFiles;
  /** Sends at once for this instance (delivery.concurrency), to size connection pools. */
  concurrency: number;
  /** Counts an output-specific event (`falco_router_output_events_total{stat}`), e.g. `truncated`. */
  count(stat: string, n?: number): void;
}

export interface OutputDefaults {
  /** Most events one send() receives. */
  maxBatch: number;
  /**
   * The largest delivery.maxbatch the type takes. 1 for outputs that make one call per event, so
   * that delivery.ratelimit (sends per second) counts their calls.
   */
  maxBatchLimit?: number;
  /** Milliseconds a part-full batch may wait for more events; 0 when absent. */
  linger?: number;
  /** Concurrent send() calls for one instance. */
  concurrency: number;
  /** Backlog above which events are summarised (outputs with sendSummary); 0 means never. */
  summarizeAbove?: number;
  /** Sends per second; 0 means no limit. */
  rateLimit?: number;
}

/**
 * falcosidekick's one-instance section for this type (`slack.*`, `aws.sns.*`): every key of the
 * type's schema is read from `<prefix>.<key>` in YAML and `PREFIX_KEY` in the environment.
 */
export interface FalcosidekickSection {
  prefix: string;
  /** The key whose non-empty value enables the output (falcosidekick's rule). */
  enabledBy: string;
  /** Keys several types share (`aws.region`), merged under the section's own. */
  shared?: { prefix: string; schema: z.ZodObject };
}

export interface OutputType<S extends z.ZodObject = z.ZodObject> {
  /** The `type:` value in native config. */
  type: string;
  /** This type's own settings, each field described (the reference docs are generated from it). */
  schema: S;
  /** Settings whose values are secrets: masked in config output, redacted from every error and log. */
  secrets: readonly string[];
  defaults: OutputDefaults;
  falcosidekick?: FalcosidekickSection;
  /** Builds the instance without I/O (that belongs in setup()), so a bad network never drops an output. */
  create(config: z.output<S>, deps: OutputDeps): Output;
}
