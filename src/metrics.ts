/**
 * Prometheus metrics: falcosidekick's series (so dashboards keep working) with bounded labels,
 * plus the router's own. Per-pod and per-namespace labels are off by default (falcosidekick#1132).
 */
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { FailureReason } from './errors.ts';
import type { DeliveryObserver, DeliveryWorker } from './pipeline/worker.ts';
import type { QueueDriver } from './queue/types.ts';
import { ROUTE_REASONS, type RouteReason } from './routing/table.ts';

/** Why an instance did not get an alert one by one: routing's reasons, then the pipeline's (held back for a summary). Never a rule or field value. */
export type FilterReason = RouteReason | 'dedup' | 'throttle';
const FILTER_REASONS: readonly FilterReason[] = [...ROUTE_REASONS, 'dedup', 'throttle'];

type FalcoEventLabels = Record<'hostname' | 'rule' | 'priority' | 'priority_raw' | 'source' | 'k8s_ns_name' | 'k8s_pod_name', string>;
/** Series of falco_events_total kept apart; a fleet has nodes × rules × priorities of them. */
export const MAX_FALCO_SERIES = 10_000;
const OTHER: FalcoEventLabels = { hostname: 'other', rule: 'other', priority: 'other', priority_raw: 'other', source: 'other', k8s_ns_name: '', k8s_pod_name: '' };
const OTHER_KEY = '\0other';

export class Metrics implements DeliveryObserver {
  readonly registry = new Registry();
  readonly falcoEvents: Counter<'hostname' | 'rule' | 'priority' | 'priority_raw' | 'source' | 'k8s_ns_name' | 'k8s_pod_name'>;
  readonly inputs: Counter<'source' | 'status'>;
  readonly outputs: Counter<'destination' | 'status'>;
  readonly rejected: Counter<'reason'>;
  readonly attempts: Counter<'output' | 'type' | 'outcome'>;
  readonly deliveredEvents: Counter<'output' | 'type'>;
  readonly deadLetteredEvents: Counter<'output' | 'type' | 'reason'>;
  readonly summarizedEvents: Counter<'output' | 'type'>;
  readonly deliveryLatency: Histogram<'output' | 'type'>;
  readonly ingestLatency: Histogram<never>;
  readonly reloads: Counter<'result'>;
  readonly outputEvents: Counter<'output' | 'type' | 'stat'>;
  readonly setupFailures: Counter<'output' | 'type'>;
  readonly filteredEvents: Counter<'output' | 'reason'>;
  /** falco_events_total's series by their labels joined; at most MAX_FALCO_SERIES, then OTHER. */
  readonly #falco = new Map<string, { labels: FalcoEventLabels; n: number }>();
  /** Per output, the filtered counts: read by the metric at scrape time and by /ready. */
  readonly #filtered = new Map<string, Record<FilterReason, number>>();

  constructor() {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    const p = 'falcosecurity_falcosidekick_';
    const falco = this.#falco;
    this.falcoEvents = new Counter({
      name: `${p}falco_events_total`,
      help: `Falco events accepted, by hostname, rule and priority (at most ${MAX_FALCO_SERIES} series; the rest count under "other")`,
      labelNames: ['hostname', 'rule', 'priority', 'priority_raw', 'source', 'k8s_ns_name', 'k8s_pod_name'],
      registers: [r],
      // Counted in a map and written out at scrape time, as the filtered counter: the labels come
      // from the request body, so whoever can post chooses them, and prom-client never forgets a series.
      collect() {
        this.reset();
        for (const s of falco.values()) this.inc(s.labels, s.n);
      },
    });
    this.inputs = new Counter({ name: `${p}inputs_total`, help: 'Ingest requests by status', labelNames: ['source', 'status'], registers: [r] });
    this.outputs = new Counter({ name: `${p}outputs_total`, help: 'Delivery attempts by output and status (ok or error)', labelNames: ['destination', 'status'], registers: [r] });
    this.rejected = new Counter({ name: 'falco_router_events_rejected_total', help: 'Ingest requests refused, by reason', labelNames: ['reason'], registers: [r] });
    this.attempts = new Counter({ name: 'falco_router_delivery_attempts_total', help: 'Send attempts by output and outcome (ok or a failure reason)', labelNames: ['output', 'type', 'outcome'], registers: [r] });
    this.deliveredEvents = new Counter({ name: 'falco_router_events_delivered_total', help: 'Events delivered, by output', labelNames: ['output', 'type'], registers: [r] });
    this.deadLetteredEvents = new Counter({ name: 'falco_router_events_dead_lettered_total', help: 'Events dead-lettered, by output and reason', labelNames: ['output', 'type', 'reason'], registers: [r] });
    this.summarizedEvents = new Counter({ name: 'falco_router_events_summarized_total', help: 'Events delivered inside a summary message (flood control), by output', labelNames: ['output', 'type'], registers: [r] });
    this.deliveryLatency = new Histogram({
      name: 'falco_router_delivery_latency_seconds',
      help: 'Time from acceptance to delivery, by output',
      labelNames: ['output', 'type'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [r],
    });
    this.ingestLatency = new Histogram({
      name: 'falco_router_ingest_latency_seconds',
      help: 'Time from request to acknowledgement (event stored)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [r],
    });
    this.outputEvents = new Counter({
      name: 'falco_router_output_events_total',
      help: "Output-specific counts, by output and kind (e.g. CloudWatch's rejectedTooOld, truncated, recreated)",
      labelNames: ['output', 'type', 'stat'],
      registers: [r],
    });
    this.setupFailures = new Counter({
      name: 'falco_router_output_setup_failures_total',
      help: 'Failed set-ups of an output (credentials, identity check, certificate files); its alerts wait meanwhile',
      labelNames: ['output', 'type'],
      registers: [r],
    });
    const filtered = this.#filtered;
    this.filteredEvents = new Counter({
      name: 'falco_router_events_filtered_total',
      help: 'Alerts accepted but not sent to an output one by one, by output and reason (priority: below its minimumpriority; match: a matcher of its match does not hold; exclude: an exclude entry, global or its own, matches; dedup, throttle: held back for a summary)',
      labelNames: ['output', 'reason'],
      registers: [r],
      // Counted in plain numbers and written out here, at scrape time: prom-client hashes and
      // checks the labels on every inc (a bound child included), and routing counts up to one
      // per instance for every alert, on the ingest path.
      collect() {
        this.reset();
        for (const [output, counts] of filtered) for (const reason of FILTER_REASONS) this.inc({ output, reason }, counts[reason]);
      },
    });
    this.reloads = new Counter({ name: 'falco_router_config_reloads_total', help: 'Config reloads by result (ok, or error when the new config was refused and the running one kept)', labelNames: ['result'], registers: [r] });
  }

  /** Queue depth, dead letters and set-up state per output, read when Prometheus scrapes. */
  watchOutputs(queue: QueueDriver, workers: () => readonly DeliveryWorker[]): void {
    const perOutput = (read: (w: DeliveryWorker) => number | Promise<number>) =>
      async function (this: Gauge<'output' | 'type'>) {
        this.reset();
        await Promise.all(
          workers().map(async (w) => {
            const v = await Promise.resolve(read(w)).catch(() => undefined);
            if (v !== undefined) this.set({ output: w.instance.name, type: w.instance.type }, v);
          }),
        );
      };
    const registers = [this.registry];
    const labelNames = ['output', 'type'] as const;
    new Gauge({ name: 'falco_router_queue_depth', help: 'Events waiting or in flight, by output', labelNames, registers, collect: perOutput((w) => queue.depth(w.instance.name)) });
    new Gauge({ name: 'falco_router_dead_letters', help: 'Events in the dead-letter set, by output', labelNames, registers, collect: perOutput((w) => queue.deadLetterCount(w.instance.name)) });
    new Gauge({
      name: 'falco_router_output_up',
      help: '1 once the output is set up, 0 while its set-up fails (its alerts wait, set-up is retried)',
      labelNames,
      registers,
      collect: perOutput((w) => (w.state.status === 'running' ? 1 : 0)),
    });
  }

  /** Silences by state (active, pending, expired), read when Prometheus scrapes, as Alertmanager's alertmanager_silences. */
  watchSilences(states: () => Record<string, number>): void {
    new Gauge({
      name: 'falco_router_silences',
      help: 'Silences by state: active (in effect), pending (starting later), expired (kept for silences.retention)',
      labelNames: ['state'],
      registers: [this.registry],
      collect(this: Gauge<'state'>) {
        for (const [state, n] of Object.entries(states())) this.set({ state }, n);
      },
    });
  }

  /** Counts an accepted alert in falcosidekick's falco_events_total. */
  falcoEvent(hostname: string, rule: string, level: number, priority: string, source: string): void {
    const key = `${hostname}\0${rule}\0${level}\0${priority}\0${source}`;
    let s = this.#falco.get(key);
    if (!s) {
      const labels = this.#falco.size < MAX_FALCO_SERIES ? { hostname, rule, priority: String(level), priority_raw: priority, source, k8s_ns_name: '', k8s_pod_name: '' } : OTHER;
      s = this.#falco.get(labels === OTHER ? OTHER_KEY : key);
      if (!s) this.#falco.set(labels === OTHER ? OTHER_KEY : key, (s = { labels, n: 0 }));
    }
    s.n++;
  }

  /** Counts an alert an output did not get; at ingest once the alert is stored. */
  filtered(output: string, reason: FilterReason, n = 1): void {
    this.#filteredOf(output)[reason] += n;
  }

  /** This process's filtered counts of an output, every reason present (0 when none), for /ready. */
  filteredCounts(output: string): Record<FilterReason, number> {
    return { ...this.#filteredOf(output) };
  }

  #filteredOf(output: string): Record<FilterReason, number> {
    let counts = this.#filtered.get(output);
    if (!counts) {
      counts = {} as Record<FilterReason, number>;
      for (const reason of FILTER_REASONS) counts[reason] = 0;
      this.#filtered.set(output, counts);
    }
    return counts;
  }

  /** Shows the filtered series of these outputs at 0 from the start (dashboards can add them up at once). */
  watchFiltered(outputs: readonly string[]): void {
    for (const o of outputs) this.#filteredOf(o);
  }

  outputEvent(output: string, type: string, stat: string, n: number): void {
    this.outputEvents.inc({ output, type, stat }, n);
  }

  setupFailed(output: string, type: string): void {
    this.setupFailures.inc({ output, type });
  }

  attempt(output: string, type: string, outcome: 'ok' | FailureReason): void {
    this.attempts.inc({ output, type, outcome });
    this.outputs.inc({ destination: output, status: outcome === 'ok' ? 'ok' : 'error' });
  }

  delivered(output: string, type: string, events: number, latencyMs: number): void {
    this.deliveredEvents.inc({ output, type }, events);
    this.deliveryLatency.observe({ output, type }, latencyMs / 1000);
  }

  summarized(output: string, type: string, events: number): void {
    this.summarizedEvents.inc({ output, type }, events);
  }

  deadLettered(output: string, type: string, events: number, reason: FailureReason): void {
    this.deadLetteredEvents.inc({ output, type, reason }, events);
  }
}
