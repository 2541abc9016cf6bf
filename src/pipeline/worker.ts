/**
 * An output instance's delivery pipeline, the one place where delivery mechanics live: set-up
 * (retried until it passes, alerts kept meanwhile), jobs from the queue, the gatherer (batch and
 * summary lanes), pacing (rate limit, Retry-After), attempts with a timeout, retries with backoff
 * of only the events that failed, dead letters for those refused or out of attempts, redaction of
 * the instance's secrets, and job progress, so a crash or a hand-back resumes after what went out.
 */
import type { Logger } from 'pino';
import type { Output } from '../../outputs/sdk/contract.ts';
import type { OutputInstance } from '../config/load.ts';
import { StoredEvent } from '../event/stored-event.ts';
import { HandBack, OutputError, type FailureReason } from '../errors.ts';
import type { Consumer, QueueDriver, QueueJob, WindowRef } from '../queue/types.ts';
import type { SendContext } from '../../outputs/sdk/contract.ts';
import { serializeEvent } from '../event/falco-event.ts';
import { groupBacklog, OVERFLOW_HASH, summaryEvent, type SummaryGroup } from './summary.ts';
import { noiseStages, windowHit, type NoiseStage } from './noise.ts';
import { Gatherer, type LaneHandle } from './gatherer.ts';
import { Pacer } from './pacer.ts';
import { attempt, type Failure } from './attempt.ts';
import { backoffDelay, sleep, systemClock, type Clock } from './clock.ts';
import { Redactor } from './redact.ts';

/** Hooks for metrics; every method is optional. */
export interface DeliveryObserver {
  attempt?(output: string, type: string, outcome: 'ok' | FailureReason, events: number): void;
  delivered?(output: string, type: string, events: number, latencyMs: number): void;
  deadLettered?(output: string, type: string, events: number, reason: FailureReason): void;
  summarized?(output: string, type: string, events: number): void;
  setupFailed?(output: string, type: string): void;
  filtered?(output: string, reason: 'dedup' | 'throttle', events: number): void;
}

export interface OutputState {
  name: string;
  type: string;
  /** `setting-up` until the output's set-up has passed (it is retried meanwhile), then `running`. */
  status: 'setting-up' | 'running';
  setupError?: { at: string; attempts: number; message: string; retryAt: string };
  lastSuccessAt?: string;
  lastError?: { at: string; reason: FailureReason; message: string };
  /** Set while the output waits on a Retry-After. */
  pausedUntil?: string;
  /** Sends abandoned at their timeout that have still not ended (a write that cannot be cancelled): the output is stuck. */
  stuckSends?: number;
}

export interface WorkerOptions {
  instance: OutputInstance;
  output: Output;
  queue: QueueDriver;
  logger: Logger;
  observer?: DeliveryObserver;
  /** The instance's secrets, kept out of every error text. */
  redactor?: Redactor;
  clock?: Clock;
}

/** Progress costs a queue write: recorded about once a second (a crash re-delivers at most that). */
const PROGRESS_INTERVAL_MS = 1000;
const MAX_SUMMARY_EVENTS = 10_000;
/** Jobs taken at once by outputs that batch or summarise, so the events of many small jobs go out together. */
const GATHER_JOBS = 64;
/** Set-up retries back off up to delivery.maxdelay, but never wait longer than this. */
const SETUP_MAX_DELAY_MS = 60_000;
const SETUP_MIN_TIMEOUT_MS = 30_000;
/** A Retry-After is honoured up to this (an hour); a destination asking for more is asked again then. */
const RETRY_AFTER_MAX_MS = 3_600_000;
/** An abandoned send still running this long after its timeout is stuck. */
const STUCK_GRACE_MS = 1000;
/** uuids named in one log line. */
const LOGGED_UUIDS = 20;

interface Item {
  event: StoredEvent;
  /** Failed attempts so far (a 429 is not one: it does not use up delivery.attempts). */
  attempts: number;
  /** Failures of any kind in a row, 429s included: what the backoff grows with. */
  failures: number;
  run: JobRun;
  /** Position in the job's events. */
  index: number;
  /** A dedup or throttle summary (its event is the summary as an alert, for outputs without a summary format). */
  group?: SummaryGroup;
}

/** A job being delivered: which of its events have ended, and the progress recorded in the queue. */
class JobRun {
  readonly items: Item[];
  /** 0 waiting, 1 settled (delivered, summarised or dead-lettered), 2 handed back. */
  readonly #ended: Uint8Array;
  #count = 0;
  #settled = 0;
  /** Events [0, done) have all settled. */
  done: number;
  /** Progress asked of the queue, and progress it confirmed. */
  #recorded: number;
  #confirmed: number;
  #recordedAt: number;
  #writes: Promise<void> = Promise.resolve();
  handedBack = false;
  readonly finished: Promise<void>;
  #finish!: () => void;

  constructor(
    readonly job: QueueJob,
    private readonly clock: Clock,
    private readonly unrecorded: { add(n: number): void },
  ) {
    this.done = this.#recorded = this.#confirmed = job.done;
    this.#recordedAt = clock.now();
    this.items = job.events.slice(job.done).map((json, i) => ({ event: new StoredEvent(json), attempts: i === 0 ? job.attempts : 0, failures: i === 0 ? job.attempts : 0, run: this, index: job.done + i }));
    this.#ended = new Uint8Array(job.events.length);
    this.finished = new Promise((resolve) => (this.#finish = resolve));
    if (this.items.length === 0) this.#finish();
  }

  settle(item: Item): void {
    if (this.#ended[item.index] !== 0) return;
    this.#ended[item.index] = 1;
    this.#settled++;
    this.unrecorded.add(1);
    while (this.done < this.#ended.length && this.#ended[this.done] === 1) this.done++;
    if (this.done < this.#ended.length && this.done > this.#recorded && this.clock.now() - this.#recordedAt >= PROGRESS_INTERVAL_MS) this.#record(0);
    this.#end();
  }

  handBack(item: Item): void {
    if (this.#ended[item.index] !== 0) return;
    this.#ended[item.index] = 2;
    this.handedBack = true;
    this.#end();
  }

  /** A failed attempt on the first unsettled event: kept, so a crash does not reset its count. */
  failedAt(item: Item): void {
    if (item.index === this.done) this.#record(item.attempts);
  }

  /** Waits for the progress writes; a job handed back records how far it got. */
  async close(): Promise<void> {
    if (this.handedBack && this.done > this.#recorded) this.#record(0);
    await this.#writes;
    // What settled stops counting as unrecorded: the job ends (the queue drops it) or goes back
    // with its progress (the events after it will be sent again).
    this.unrecorded.add(-(this.#settled - (this.#confirmed - this.job.done)));
  }

  #record(attempts: number): void {
    const done = this.done;
    this.#recorded = done;
    this.#recordedAt = this.clock.now();
    this.#writes = this.#writes
      .then(() => this.job.progress(done, attempts))
      .then(
        () => {
          this.unrecorded.add(-(done - this.#confirmed));
          this.#confirmed = done;
        },
        // Not recorded: a crash would send those events again (at-least-once).
        () => {},
      );
  }

  #end(): void {
    if (++this.#count === this.items.length) this.#finish();
  }
}

export class DeliveryWorker {
  readonly state: OutputState;
  readonly instance: OutputInstance;
  readonly output: Output;
  readonly #queue: QueueDriver;
  readonly #logger: Logger;
  readonly #observer: DeliveryObserver;
  readonly #redactor: Redactor;
  readonly #clock: Clock;
  readonly #pacer: Pacer;
  readonly #gatherer: Gatherer<Item>;
  readonly #lanes: LaneHandle<Item>[] = [];
  readonly #send: LaneHandle<Item>;
  readonly #summary: LaneHandle<Item>;
  readonly #noise: NoiseStage[];
  #consumer?: Consumer;
  #started?: Promise<void>;
  /** Aborted on stop: set-up retries end. */
  readonly #stopped = new AbortController();
  /** Aborted when waiting work goes back to the queue (stop with Redis, reload, end of grace). */
  readonly #handBack = new AbortController();
  /** Aborted when the grace period ends: attempts in flight end too. */
  readonly #halt = new AbortController();
  /** Sends abandoned at their timeout that have not ended yet; `stuck` once past STUCK_GRACE_MS. */
  readonly #abandoned = new Set<{ ended: Promise<unknown>; stuck: boolean }>();
  /** Events in the summary lane or in a summary being sent. */
  #inSummary = 0;
  /** Events settled that the queue still counts in its depth (their job has not recorded them). */
  #unrecorded = 0;

  constructor(o: WorkerOptions) {
    this.instance = o.instance;
    this.output = o.output;
    this.#queue = o.queue;
    this.#logger = o.logger;
    this.#observer = o.observer ?? {};
    this.#redactor = o.redactor ?? new Redactor([]);
    this.#clock = o.clock ?? systemClock;
    const { name, type, delivery } = o.instance;
    this.state = { name, type, status: 'setting-up' };
    this.#pacer = new Pacer(delivery.ratelimit, this.#clock);
    this.#gatherer = new Gatherer<Item>(delivery.concurrency, this.#clock);
    // The summary lane first: it holds the oldest events of a flood, and the summaries of windows that ended.
    this.#summary = this.#gatherer.lane({ maxBatch: MAX_SUMMARY_EVENTS, lingerMs: 0 }, (batch) => this.#deliver(batch, true));
    this.#lanes.push(this.#summary);
    this.#noise = noiseStages(o.instance);
    const lane = this.#gatherer.lane({ maxBatch: delivery.maxbatch, lingerMs: delivery.linger }, (batch) => this.#deliver(batch, false));
    this.#send = lane;
    this.#lanes.push(lane);
  }

  /** Runs the output's set-up (retried until it passes), then takes jobs from the queue. */
  start(): void {
    this.#started = this.#setUp().then(() => {
      if (this.#stopped.signal.aborted) return;
      const { concurrency, maxbatch } = this.instance.delivery;
      const jobs = this.instance.delivery.summarizeabove > 0 || maxbatch > 1 ? Math.max(concurrency, GATHER_JOBS) : concurrency;
      this.#consumer = this.#queue.consume(this.instance.name, jobs, (job) => this.#handle(job));
    });
  }

  /**
   * Stops taking work. With Redis, or without drain (reload: another worker takes over the same
   * queue), waiting work goes back to the queue at once; a final stop of the memory queue keeps
   * delivering instead. After graceMs, attempts in flight end and go back too.
   */
  async stop(graceMs: number, opts: { drain: boolean } = { drain: true }): Promise<void> {
    this.#stopped.abort();
    const grace = this.#clock.setTimeout(() => this.#handBackAll(true), graceMs);
    if (this.#queue.kind === 'redis' || !opts.drain) this.#handBackAll(false);
    else this.#gatherer.hurry();
    try {
      await this.#started;
      await this.#consumer?.stop(graceMs, opts.drain);
    } finally {
      this.#clock.clearTimeout(grace);
      this.#consumer = undefined;
    }
  }

  #handBackAll(halt: boolean): void {
    this.#handBack.abort();
    if (halt) this.#halt.abort();
    for (const lane of this.#lanes) {
      for (const item of lane.take()) {
        if (lane === this.#summary) this.#inSummary--;
        item.run.handBack(item);
      }
    }
  }

  async #setUp(): Promise<void> {
    const { name, type, delivery } = this.instance;
    if (!this.output.setup) {
      this.state.status = 'running';
      return;
    }
    const timeout = Math.max(delivery.timeout, SETUP_MIN_TIMEOUT_MS);
    for (let n = 1; !this.#stopped.signal.aborted; n++) {
      const signal = AbortSignal.any([this.#stopped.signal, AbortSignal.timeout(timeout)]);
      try {
        await Promise.race([
          this.output.setup(signal),
          new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error(`set-up did not finish within ${timeout} ms`)), { once: true })),
        ]);
        this.state.status = 'running';
        this.state.setupError = undefined;
        if (n > 1) this.#logger.info({ output: name, type, attempts: n }, `output ${name} is set up after ${n} tries; delivering what waited`);
        return;
      } catch (err) {
        if (this.#stopped.signal.aborted) return;
        const message = this.#redactor.message((err as Error).message);
        const wait = backoffDelay(n, delivery.initialdelay, Math.min(delivery.maxdelay, SETUP_MAX_DELAY_MS));
        const now = this.#clock.now();
        this.state.setupError = { at: new Date(now).toISOString(), attempts: n, message, retryAt: new Date(now + wait).toISOString() };
        this.#observer.setupFailed?.(name, type);
        this.#logger.error(
          { output: name, type, attempt: n, retryInMs: wait },
          `output ${name} cannot start: ${message}; its alerts are kept and set-up is tried again in ${Math.round(wait / 1000)} s`,
        );
        await sleep(this.#clock, wait, this.#stopped.signal).catch(() => {});
      }
    }
  }

  async #handle(job: QueueJob): Promise<void> {
    if (this.#handBack.signal.aborted) throw new HandBack();
    if (job.close) return this.#closeWindow(job);
    const run = new JobRun(job, this.#clock, { add: (n) => (this.#unrecorded += n) });
    let items = run.items;
    if (this.#noise.length > 0) {
      try {
        items = await this.#holdBack(job, items);
      } catch (err) {
        // Counting needs the queue (Redis); until it answers, the job goes back untouched.
        this.#logger.warn({ output: this.instance.name, type: this.instance.type, err: (err as Error).message }, `dedup/throttle could not count: ${(err as Error).message}; the alerts go back to the queue`);
        for (const it of items) run.handBack(it);
        items = [];
      }
    }
    const excess = this.instance.delivery.summarizeabove > 0 ? await this.#excessBacklog(items.length) : 0;
    if (excess > 0) {
      this.#inSummary += excess;
      this.#summary.add(items.slice(0, excess));
    }
    this.#send.add(excess > 0 ? items.slice(excess) : items);
    await run.finished;
    await run.close();
    if (run.handedBack) throw new HandBack();
  }

  /**
   * Dedup, then throttle: counts each alert in its key's window and settles those held back (they
   * count as filtered and go into the window's summary). A window that starts holding back gets its
   * close job first, so a crash in between cannot lose the held-back count. An alert whose job runs
   * again (handed back, or after a crash) is counted in its window once, and so as filtered once.
   */
  async #holdBack(job: QueueJob, items: Item[]): Promise<Item[]> {
    const { name, type } = this.instance;
    let pass = items;
    for (const stage of this.#noise) {
      const hits = pass.map((it) => windowHit(stage, it.event.event));
      const counts = await this.#queue.countInWindows(name, hits, job);
      const toClose = new Map<string, { ref: WindowRef; end: number }>();
      for (const c of counts) if (c.needsClose) toClose.set(`${c.hash}|${c.start}`, { ref: { kind: stage.kind, hash: c.hash, start: c.start }, end: c.end });
      for (const { ref, end } of toClose.values()) await this.#queue.scheduleClose(name, ref, end);
      const held = pass.filter((_, i) => counts[i].n > hits[i].limit);
      const heldNow = counts.filter((c, i) => c.n > hits[i].limit && c.counted).length;
      if (heldNow > 0) this.#observer.filtered?.(name, stage.kind, heldNow);
      for (const it of held) it.run.settle(it);
      pass = pass.filter((_, i) => counts[i].n <= hits[i].limit);
    }
    return pass;
  }

  /**
   * A dedup or throttle window ended: the queue ends it and takes what it held back in one step (an
   * alert counted after that opens a new window, with its own close job), the summary goes out
   * through the summary lane, and only then is what was taken dropped. A close job that crashes or
   * is handed back in between runs again and takes the same count: the summary may be sent twice,
   * the held-back count is never lost.
   */
  async #closeWindow(job: QueueJob): Promise<void> {
    const ref = job.close!;
    const { name } = this.instance;
    const agg = await this.#queue.closeWindow(name, ref);
    if (!agg) return;
    const group: SummaryGroup = {
      reason: ref.kind,
      key: agg.key,
      count: agg.held,
      byPriority: agg.byPriority,
      hostnames: agg.hostnames,
      pods: agg.pods,
      rules: agg.rules,
      first: agg.first,
      last: agg.last,
      window: { start: ref.start, end: agg.end, max: ref.kind === 'throttle' ? this.instance.throttle?.max : undefined },
      ...(ref.hash === OVERFLOW_HASH ? { overflow: true as const } : {}),
    };
    const run = new JobRun({ ...job, events: [serializeEvent(summaryEvent(group))], done: 0 }, this.#clock, { add: () => {} });
    const [item] = run.items;
    item.group = group;
    this.#inSummary++;
    this.#summary.add([item]);
    await run.finished;
    await run.close();
    if (run.handedBack) throw new HandBack();
    await this.#queue.dropWindow(name, ref);
  }

  /**
   * How many of a job's events to summarise: those beyond the backlog bound (a flood becomes "N more
   * alerts" instead of a wall of messages). Decided after the await, in one synchronous step, so
   * jobs deciding at once see each other's choice.
   */
  async #excessBacklog(n: number): Promise<number> {
    const depth = await this.#queue.depth(this.instance.name).catch(() => 0);
    const backlog = depth - this.#unrecorded - this.#inSummary;
    return Math.min(n, Math.max(0, backlog - this.instance.delivery.summarizeabove), MAX_SUMMARY_EVENTS);
  }

  /** Sends a batch until each of its events is delivered, summarised, dead-lettered or handed back. */
  async #deliver(batch: Item[], summary: boolean): Promise<void> {
    const { name, type, delivery } = this.instance;
    let pending = batch;
    try {
      while (pending.length > 0) {
        if (this.#handBack.signal.aborted) throw new HandBack();
        if (this.#abandoned.size > 0) await this.#abandonedEnded();
        await this.#pacer.turn(this.#handBack.signal).catch(() => {
          throw new HandBack();
        });
        this.state.pausedUntil = undefined;
        const tries = 1 + Math.max(...pending.map((i) => i.attempts));
        const events = pending.map((i) => i.event);
        const out = await attempt(events, (ctx) => (summary ? this.#sendSummary(pending, ctx) : this.output.send(events, ctx)), {
          attempt: tries,
          timeoutMs: delivery.timeout,
          stop: this.#halt.signal,
          clock: this.#clock,
          redact: (e) => e.withMessage(this.#redactor.message(e.message)),
          abandoned: (ended) => this.#abandon(ended),
        });
        const byEvent = new Map(pending.map((i) => [i.event, i]));
        if (out.delivered.length > 0) this.#succeeded(out.delivered.map((e) => byEvent.get(e)!), summary);
        const retry = new Set<Item>();
        let retryAfterMs: number | undefined;
        for (const f of out.failed) {
          const items = f.events.map((e) => byEvent.get(e)!);
          this.#failedAttempt(items, f, tries);
          const final: Item[] = [];
          for (const it of items) {
            // A destination that asks us to slow down is not failing: 429s do not use up attempts.
            if (f.error.reason !== 'rateLimited') it.attempts++;
            it.failures++;
            if (f.error.retryable && it.attempts < delivery.attempts) retry.add(it);
            else final.push(it);
          }
          if (final.length > 0) await this.#deadLetter(final, f.error, summary);
          if (f.error.retryAfterMs !== undefined) retryAfterMs = Math.max(retryAfterMs ?? 0, Math.min(f.error.retryAfterMs, RETRY_AFTER_MAX_MS));
        }
        // In batch order, not grouped by error: a FIFO destination gets the retries in queue order.
        pending = pending.filter((it) => retry.has(it));
        if (pending.length === 0) break;
        for (const it of pending) it.run.failedAt(it);
        if (retryAfterMs !== undefined) {
          this.#pacer.pause(retryAfterMs);
          this.state.pausedUntil = new Date(this.#pacer.pausedUntil ?? this.#clock.now()).toISOString();
        } else {
          const wait = backoffDelay(Math.max(...pending.map((i) => i.failures), 1), delivery.initialdelay, delivery.maxdelay);
          await sleep(this.#clock, wait, this.#handBack.signal).catch(() => {
            throw new HandBack();
          });
        }
      }
    } catch (err) {
      // Stopping, or the queue could not take a dead letter: what has not settled goes back.
      if (!(err instanceof HandBack)) this.#logger.error({ output: name, type, err: (err as Error).message }, 'delivery handed back to the queue after an error');
      for (const it of pending) it.run.handBack(it);
    } finally {
      if (summary) this.#inSummary -= batch.length;
    }
  }

  /**
   * A send abandoned at its timeout. An HTTP call ends as soon as it is aborted; one still running
   * after STUCK_GRACE_MS cannot be cancelled (a write to a hung mount): the output is stuck. No
   * new send starts while an abandoned one runs (#deliver waits), so a stuck output does not pile
   * up blocked threads, nor race the stuck write on the same file.
   */
  #abandon(ended: Promise<unknown>): void {
    const { name, type } = this.instance;
    const entry = { ended, stuck: false };
    this.#abandoned.add(entry);
    const grace = this.#clock.setTimeout(() => {
      entry.stuck = true;
      this.state.stuckSends = [...this.#abandoned].filter((e) => e.stuck).length;
      this.#logger.error({ output: name, type }, `output ${name} is stuck: a send did not end ${STUCK_GRACE_MS} ms after its timeout; no other send starts until it does`);
    }, STUCK_GRACE_MS);
    void ended.then(() => {
      this.#clock.clearTimeout(grace);
      this.#abandoned.delete(entry);
      this.state.stuckSends = [...this.#abandoned].filter((e) => e.stuck).length || undefined;
    });
  }

  /** Resolves once every abandoned send has ended; hands back if the router stops meanwhile. */
  async #abandonedEnded(): Promise<void> {
    const stop = new Promise<never>((_, reject) => {
      if (this.#handBack.signal.aborted) reject(new HandBack());
      this.#handBack.signal.addEventListener('abort', () => reject(new HandBack()), { once: true });
    });
    stop.catch(() => {});
    await Promise.race([Promise.all([...this.#abandoned].map((e) => e.ended)), stop]);
  }

  /**
   * A summary of a lane batch: flood-control alerts grouped by rule, and window summaries. To
   * Slack-like outputs as one message, all or nothing. To the others as one alert per group, each
   * with its own outcome: what send() reports for a group's alert is reported for the items the
   * group stands for, so a retry resends only the groups that did not go out (the webhook output
   * makes one call per group; all or nothing would resend the first groups when a later one fails).
   */
  async #sendSummary(items: readonly Item[], ctx: SendContext): Promise<void> {
    const backlog = groupBacklog(items.filter((it) => !it.group), (it) => it.event.event);
    const groups = [...backlog.map((b) => b.group), ...items.flatMap((it) => (it.group ? [it.group] : []))];
    if (this.output.sendSummary) return this.output.sendSummary(groups, ctx);
    const standsFor = new Map<StoredEvent, StoredEvent[]>();
    for (const b of backlog) standsFor.set(new StoredEvent(serializeEvent(summaryEvent(b.group))), b.items.map((it) => it.event));
    // A window summary's item is already its group as an alert (the same uuid on every retry).
    for (const it of items) if (it.group) standsFor.set(it.event, [it.event]);
    const of = (events: readonly StoredEvent[]) => events.flatMap((e) => standsFor.get(e) ?? []);
    await this.output.send([...standsFor.keys()], { ...ctx, delivered: (events) => ctx.delivered(of(events)), failed: (events, err) => ctx.failed(of(events), err) });
  }

  #succeeded(items: Item[], summary: boolean): void {
    const { name, type } = this.instance;
    this.state.lastSuccessAt = new Date(this.#clock.now()).toISOString();
    this.#observer.attempt?.(name, type, 'ok', items.length);
    if (summary) {
      const backlog = items.filter((it) => !it.group).length;
      if (backlog > 0) this.#observer.summarized?.(name, type, backlog);
    }
    else {
      const perRun = new Map<JobRun, number>();
      for (const it of items) perRun.set(it.run, (perRun.get(it.run) ?? 0) + 1);
      for (const [run, n] of perRun) this.#observer.delivered?.(name, type, n, this.#clock.now() - run.job.acceptedAt);
    }
    if (this.#logger.isLevelEnabled('debug')) this.#logger.debug({ output: name, type, ...ids(items) }, summary ? 'summarised' : 'delivered');
    for (const it of items) it.run.settle(it);
  }

  #failedAttempt(items: Item[], f: Failure, tries: number): void {
    const { name, type, delivery } = this.instance;
    const { error } = f;
    this.state.lastError = { at: new Date(this.#clock.now()).toISOString(), reason: error.reason, message: error.message };
    this.#observer.attempt?.(name, type, error.reason, items.length);
    const final = !error.retryable || (error.reason !== 'rateLimited' && tries >= delivery.attempts);
    this.#logger.warn(
      { output: name, type, reason: error.reason, status: error.status, attempt: tries, events: items.length, final, ...ids(items) },
      `delivery attempt failed: ${error.message}`,
    );
  }

  async #deadLetter(items: Item[], error: OutputError, summary: boolean): Promise<void> {
    const { name, type } = this.instance;
    const why = error.retryable ? `${error.message} (gave up after ${Math.max(...items.map((i) => i.attempts))} attempts)` : error.message;
    const failedAt = new Date(this.#clock.now()).toISOString();
    await this.#queue.deadLetter(items.map((i) => ({ output: name, event: i.event.json, reason: why, attempts: i.attempts, failedAt })));
    // A window's summary is kept as a dead letter (to be seen and requeued) but not counted as a
    // dead-lettered alert: the alerts it stands for were counted as filtered when held back.
    const alerts = items.filter((i) => !i.group).length;
    if (alerts > 0) this.#observer.deadLettered?.(name, type, alerts, error.reason);
    this.#logger.error({ output: name, type, reason: error.reason, events: items.length, summary, ...ids(items) }, `dead-lettered: ${why}`);
    for (const it of items) it.run.settle(it);
  }
}

/** The alerts a log line is about: `uuid` for one, `uuids` (the first 20) for more. */
function ids(items: readonly Item[]): Record<string, unknown> {
  if (items.length === 1) return { uuid: items[0].event.uuid };
  return { uuids: items.slice(0, LOGGED_UUIDS).map((i) => i.event.uuid) };
}
