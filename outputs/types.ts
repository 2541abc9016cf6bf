/**
 * The output contract. An adapter formats a batch and makes the network call; batching,
 * timeouts, retries, rate limits, dead-lettering, metrics and logs live in src/delivery.
 */
import type { z } from 'zod';
import type { Logger } from 'pino';
import type { FalcoEvent } from '../src/event/falco-event.ts';
import type { StoredEvent } from '../src/event/stored-event.ts';
import type { ClientTlsFiles } from '../src/http/client.ts';

export type { FalcoEvent, StoredEvent };
export { OutputError, classifyStatus } from '../src/delivery/output-error.ts';

export interface SendContext {
  /** Aborted when the attempt times out or the router is stopping. */
  signal: AbortSignal;
  /** 1 for the first attempt of this batch. */
  attempt: number;
}

export interface Output {
  /** Instance name, unique in the config: "slack:secops" style names are up to the user. */
  readonly name: string;
  /** Delivers every event of the batch or throws OutputError. */
  send(batch: readonly StoredEvent[], ctx: SendContext): Promise<void>;
  /**
   * Optional: one message that stands for many events. The delivery worker calls it instead of
   * send() for the events beyond `delivery.summarizeabove` while the backlog is over that bound.
   */
  sendSummary?(events: readonly StoredEvent[], ctx: SendContext): Promise<void>;
  /** Counters of the adapter's own (e.g. events CloudWatch rejected), exported as falco_router_output_events_total. */
  readonly stats?: object;
  close?(): Promise<void>;
}

export interface OutputDeps {
  logger: Logger;
  /** Logs payloads when the global `debug` setting is on. */
  debug: boolean;
  /** Client certificate files shared by HTTP outputs (mutualtls, tlsclient.cacertfile). */
  tls: ClientTlsFiles;
  /** Sends at once for this instance (delivery.concurrency), to size connection pools. */
  concurrency: number;
}

export interface OutputDefaults {
  /** Most events one send() receives. */
  maxBatch: number;
  /** Milliseconds a part-full batch may wait for more events (outputs with maxBatch > 1); 0 when absent. */
  linger?: number;
  /** Concurrent send() calls for one instance. */
  concurrency: number;
  /** Backlog above which events are summarised (outputs with sendSummary); 0 means never. */
  summarizeAbove?: number;
  /** Sends per second; 0 means no limit. */
  rateLimit?: number;
}

/** Keys falcosidekick reads for this output: `<prefix>.<key>` in YAML, `PREFIX_KEY` in env. */
export interface FalcosidekickKeys {
  prefix: string;
  /** The key whose non-empty value enables the output (e.g. `address`). */
  enabledBy: string;
  /** Key → kind, to parse env values: map is `k:v,k2:v2`, list is `a,b`. */
  keys: Record<string, 'string' | 'map' | 'list'>;
  /** Keys shared by several types (`aws.region`), merged under the type's own settings. */
  shared?: { prefix: string; keys: Record<string, 'string' | 'map' | 'list'> };
}

export interface OutputType<C extends Record<string, unknown> = Record<string, unknown>> {
  /** The `type:` value in native config. */
  type: string;
  /** Validates this type's own settings (the common ones are validated by the loader). */
  schema: z.ZodType<C>;
  /** Settings whose values are secrets; masked wherever config is shown. */
  secrets: readonly string[];
  defaults: OutputDefaults;
  falcosidekick?: FalcosidekickKeys;
  create(name: string, config: C, deps: OutputDeps): Output | Promise<Output>;
}
