/**
 * The delivery mechanics, once for every output: batch, rate limit, timeout per attempt,
 * retries with backoff (honouring Retry-After), dead-lettering, progress for resumable batches.
 */
import type { Logger } from 'pino';
import type { Output } from '../../outputs/types.ts';
import type { OutputInstance } from '../config/load.ts';
import { StoredEvent } from '../event/stored-event.ts';
import { HandBack, type Consumer, type QueueDriver, type QueueJob } from '../queue/types.ts';
import { OutputError, toOutputError, type FailureReason } from './output-error.ts';
import { backoffDelay, sleep } from './backoff.ts';

/** Hooks for metrics; every method is optional. */
export interface DeliveryObserver {
  attempt?(output: string, type: string, outcome: 'ok' | FailureReason, events: number): void;
  delivered?(output: string, type: string, events: number, latencyMs: number): void;
  deadLettered?(output: string, type: string, events: number, reason: FailureReason): void;
  summarized?(output: string, type: string, events: number): void;
}

export interface OutputState {
  name: string;
  type: string;
  lastSuccessAt?: string;
  lastError?: { at: string; reason: FailureReason; message: string };
  /** Set while the output waits on a Retry-After. */
  pausedUntil?: string;
}

const PROGRESS_INTERVAL_MS = 1000;
const MAX_SUMMARY_EVENTS = 10_000;
/**
 * Jobs taken at once by outputs that summarise or batch, so that the events of many small jobs
 * can go out together (one summary, one PutLogEvents) instead of one send per job.
 */
const GATHER_CONSUMERS = 64;

interface Parked {
  events: StoredEvent[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A job's chunk waiting to go out in a batch with the chunks of other jobs. */
interface Waiting {
  events: StoredEvent[];
  /** When it started waiting (ms). */
  at: number;
  signal: AbortSignal;
  /** Resolves with how many of its events were delivered (the rest were dead-lettered). */
  resolve: (delivered: number) => void;
  reject: (err: unknown) => void;
}

/** At most n holders at a time, first come first served. */
class Slots {
  #free: number;
  #waiting: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }
  /** Takes a slot if one is free now. */
  tryAcquire(): boolean {
    if (this.#free === 0) return false;
    this.#free--;
    return true;
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

export class DeliveryWorker {
  readonly state: OutputState;
  #consumer?: Consumer;
  #pausedUntil = 0;
  #nextSlot = 0;
  #slots: Slots;
  #parked: Parked[] = [];
  #parkedEvents = 0;
  #flushing = false;
  /** Chunks of several jobs waiting for a send slot or for `delivery.linger` (outputs with maxbatch > 1). */
  #waiting: Waiting[] = [];
  #waitingEvents = 0;
  #lingerTimer?: NodeJS.Timeout;
  /** Set on stop: nothing lingers any more. */
  #noLinger = false;
  /** Aborted on stop with a durable queue: a job waiting to retry is handed back at once. */
  readonly #stopping = new AbortController();

  constructor(
    readonly instance: OutputInstance,
    readonly output: Output,
    private readonly queue: QueueDriver,
    private readonly logger: Logger,
    private readonly observer: DeliveryObserver = {},
  ) {
    this.state = { name: instance.name, type: instance.type };
    this.#slots = new Slots(instance.delivery.concurrency);
  }

  start(): void {
    const { concurrency, summarizeabove } = this.instance.delivery;
    // Sends are limited by #slots; an output that summarises takes more jobs at once, so that
    // the events of many small jobs can wait together for one summary.
    const jobs = (this.output.sendSummary && summarizeabove > 0) || this.#batches() ? Math.max(concurrency, GATHER_CONSUMERS) : concurrency;
    this.#consumer = this.queue.consume(this.instance.name, jobs, (job, signal) => this.#handle(job, signal));
  }

  /** Stops taking work; in-flight sends get graceMs, then are handed back to the queue. */
  async stop(graceMs: number, opts: { drain: boolean } = { drain: true }): Promise<void> {
    // Handing back a waiting retry loses nothing with Redis, or when another worker takes over
    // the same queue (reload); a final stop with the memory queue keeps trying to drain instead.
    if (this.queue.kind === 'redis' || !opts.drain) this.#stopping.abort();
    // Nothing lingers once stopping: what waits goes out with the next free slot.
    this.#noLinger = true;
    this.#pump();
    await this.#consumer?.stop(graceMs, opts.drain);
    this.#consumer = undefined;
  }

  async #handle(job: QueueJob, signal: AbortSignal): Promise<void> {
    if (this.#stopping.signal.aborted) throw new HandBack();
    const progress = { done: job.done, attempts: job.attempts };
    try {
      await this.#deliver(job, signal, progress);
    } catch (err) {
      // Handing back: keep what went out, so the next holder resumes after it.
      if (err instanceof HandBack && progress.done > job.done) await job.progress(progress.done, progress.attempts).catch(() => {});
      throw err;
    }
  }

  async #deliver(job: QueueJob, signal: AbortSignal, progress: { done: number; attempts: number }): Promise<void> {
    const { name, type, delivery } = this.instance;
    let done = job.done;
    let persistedAt = Date.now();
    let persistedDone = done;
    while (done < job.events.length) {
      const excess = await this.#excessBacklog(job.events.length - done, done - persistedDone);
      const chunk = job.events.slice(done, done + (excess > 0 ? excess : delivery.maxbatch)).map((json) => new StoredEvent(json));
      if (excess > 0) {
        // Flood: these events go into the next summary message, with those of other jobs.
        await this.#park(chunk, signal);
      } else if (this.#batches()) {
        const delivered = await this.#together(chunk, signal);
        if (delivered > 0) this.observer.delivered?.(name, type, delivered, Date.now() - job.acceptedAt);
      } else {
        await this.#slots.acquire();
        try {
          const onFailure = async (attempts: number) => {
            progress.attempts = attempts;
            await job.progress(done, attempts);
            persistedDone = done;
          };
          const dead = await this.#settle(chunk, false, signal, progress.attempts, onFailure);
          const delivered = chunk.length - dead.length;
          if (delivered > 0) this.observer.delivered?.(name, type, delivered, Date.now() - job.acceptedAt);
        } finally {
          this.#release();
        }
      }
      done += chunk.length;
      progress.done = done;
      progress.attempts = 0;
      // Progress costs a queue write: record it about once a second. A crash in between
      // re-delivers at most that second's events (at-least-once).
      if (Date.now() - persistedAt >= PROGRESS_INTERVAL_MS && done < job.events.length) {
        await job.progress(done, 0);
        persistedAt = Date.now();
        persistedDone = done;
      }
    }
  }

  /**
   * Sends one chunk until it is delivered or dead-lettered: rate limit, attempt, classify, back
   * off (or wait out Retry-After). Returns the events that were dead-lettered (none when all were
   * delivered). Throws HandBack when the router stops meanwhile.
   */
  async #settle(
    chunk: StoredEvent[],
    summary: boolean,
    signal: AbortSignal,
    attempts: number,
    onFailure: (attempts: number) => Promise<void>,
    waited = false,
  ): Promise<readonly StoredEvent[]> {
    const { name, type, delivery } = this.instance;
    for (;;) {
      if (!waited) await this.#waitTurn(signal);
      waited = false;
      const err = await this.#attempt(chunk, attempts + 1, signal, summary);
      if (!err) {
        this.state.lastSuccessAt = new Date().toISOString();
        this.observer.attempt?.(name, type, 'ok', chunk.length);
        if (summary) this.observer.summarized?.(name, type, chunk.length);
        return [];
      }
      // A destination that asks us to slow down is not failing: 429s do not use up attempts.
      if (err.reason !== 'rateLimited') attempts++;
      this.state.lastError = { at: new Date().toISOString(), reason: err.reason, message: err.message };
      this.observer.attempt?.(name, type, err.reason, chunk.length);
      const final = !err.retryable || attempts >= delivery.attempts;
      this.logger.warn(
        { output: name, type, reason: err.reason, status: err.status, attempt: attempts, events: chunk.length, final },
        `delivery attempt failed: ${err.message}`,
      );
      if (final) {
        const why = err.retryable ? `${err.message} (gave up after ${attempts} attempts)` : err.message;
        const failedAt = new Date().toISOString();
        const failed = err.undelivered ?? chunk;
        await this.queue.deadLetter(failed.map((e) => ({ output: name, event: e.json, reason: why, attempts, failedAt })));
        this.observer.deadLettered?.(name, type, failed.length, err.reason);
        this.logger.error({ output: name, type, reason: err.reason, events: failed.length }, `dead-lettered: ${why}`);
        return failed;
      }
      await onFailure(attempts);
      if (err.retryAfterMs !== undefined) {
        this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + err.retryAfterMs);
        this.state.pausedUntil = new Date(this.#pausedUntil).toISOString();
      } else {
        await this.#sleep(backoffDelay(Math.max(1, attempts), delivery.initialdelay, delivery.maxdelay), signal);
      }
    }
  }

  /** Outputs that take several events per send batch the chunks of concurrent jobs together. */
  #batches(): boolean {
    return this.instance.delivery.maxbatch > 1;
  }

  /**
   * Sends a job's chunk together with those of other jobs: a send starts when a slot is free and
   * either maxbatch events wait or the oldest has waited `delivery.linger`. Under load, chunks
   * gather while every slot is busy, so the number of sends stays near the destination's pace.
   */
  #together(events: StoredEvent[], signal: AbortSignal): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.#waiting.push({ events, at: Date.now(), signal, resolve, reject });
      this.#waitingEvents += events.length;
      this.#pump();
    });
  }

  /** Frees a send slot; chunks waiting to go out together may take it. */
  #release(): void {
    this.#slots.release();
    if (this.#waiting.length > 0) this.#pump();
  }

  #pump(): void {
    const { maxbatch, linger } = this.instance.delivery;
    while (this.#waiting.length > 0) {
      const wait = this.#noLinger ? 0 : this.#waiting[0].at + linger - Date.now();
      if (this.#waitingEvents < maxbatch && wait > 0) {
        this.#lingerTimer ??= setTimeout(() => {
          this.#lingerTimer = undefined;
          this.#pump();
        }, wait);
        return;
      }
      if (!this.#slots.tryAcquire()) return;
      const batch: Waiting[] = [];
      let count = 0;
      while (this.#waiting.length > 0 && (batch.length === 0 || count + this.#waiting[0].events.length <= maxbatch)) {
        const w = this.#waiting.shift()!;
        batch.push(w);
        count += w.events.length;
      }
      this.#waitingEvents -= count;
      void this.#sendTogether(batch).finally(() => this.#release());
    }
    clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
  }

  async #sendTogether(batch: Waiting[]): Promise<void> {
    try {
      if (batch[0].signal.aborted || (this.#stopping.signal.aborted && this.queue.kind === 'redis')) throw new HandBack();
      // Jobs of one consumer share its signal. Attempts are counted per batch, not saved per job:
      // after a crash, the jobs come back and are batched afresh.
      const dead = await this.#settle(batch.flatMap((w) => w.events), false, batch[0].signal, 0, async () => {});
      const lost = new Set(dead);
      for (const w of batch) w.resolve(lost.size === 0 ? w.events.length : w.events.filter((e) => !lost.has(e)).length);
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }

  /** Holds a job's events (already counted by #excessBacklog) until a summary that includes them has gone out or been dead-lettered. */
  #park(events: StoredEvent[], signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#parked.push({ events, resolve, reject });
      if (!this.#flushing) void this.#flushSummaries(signal);
    });
  }

  /** One summary per send slot, standing for every event parked by then. */
  async #flushSummaries(signal: AbortSignal): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#parked.length > 0) {
        await this.#slots.acquire();
        try {
          let waitErr: unknown;
          await this.#waitTurn(signal).catch((err) => (waitErr = err));
          const batch: Parked[] = [];
          let count = 0;
          while (this.#parked.length > 0 && count < MAX_SUMMARY_EVENTS) {
            const p = this.#parked.shift()!;
            batch.push(p);
            count += p.events.length;
          }
          // Still counted as parked until settled: the queue's depth only drops when their jobs end.
          const settled = (fn: (p: Parked) => void) => {
            this.#parkedEvents -= count;
            batch.forEach(fn);
          };
          if (waitErr) {
            settled((p) => p.reject(waitErr));
            continue;
          }
          try {
            await this.#settle(batch.flatMap((p) => p.events), true, signal, 0, async () => {}, true);
            settled((p) => p.resolve());
          } catch (err) {
            settled((p) => p.reject(err));
          }
        } finally {
          this.#release();
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * How many of the job's next events to summarise: those beyond the backlog bound, for outputs
   * that can summarise (a flood becomes "N more alerts" instead of a wall of messages).
   */
  async #excessBacklog(remainingInJob: number, deliveredNotRecorded: number): Promise<number> {
    const bound = this.instance.delivery.summarizeabove;
    if (!this.output.sendSummary || bound <= 0) return 0;
    // The queue's depth still counts events delivered since the last progress write, and those
    // already waiting in a summary.
    const depth = await this.queue.depth(this.instance.name).catch(() => 0);
    const backlog = depth - deliveredNotRecorded - this.#parkedEvents;
    const excess = Math.min(remainingInJob, Math.max(0, backlog - bound), MAX_SUMMARY_EVENTS);
    // Counted as parked from this moment, so jobs deciding concurrently see each other's choice.
    this.#parkedEvents += excess;
    return excess;
  }

  /**
   * One send with its own timeout; undefined when it succeeded. (A plain controller and timer:
   * AbortSignal.any/timeout per attempt cost ~4 % of the CPU of an end-to-end run.)
   */
  async #attempt(chunk: StoredEvent[], attempt: number, signal: AbortSignal, summary = false): Promise<OutputError | undefined> {
    if (signal.aborted) throw new HandBack();
    const { timeout } = this.instance.delivery;
    const attemptAbort = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      attemptAbort.abort();
    }, timeout);
    const stop = () => attemptAbort.abort();
    signal.addEventListener('abort', stop);
    try {
      const ctx = { signal: attemptAbort.signal, attempt };
      await (summary ? this.output.sendSummary!(chunk, ctx) : this.output.send(chunk, ctx));
      return undefined;
    } catch (err) {
      if (signal.aborted) throw new HandBack();
      if (timedOut) {
        // Keep what the adapter knows went out before the timeout, so a final failure does not
        // dead-letter it.
        const undelivered = err instanceof OutputError ? err.undelivered : undefined;
        return new OutputError(`attempt timed out after ${timeout} ms`, { reason: 'timeout', retryable: true, undelivered });
      }
      return toOutputError(err);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', stop);
    }
  }

  /** Waits out a Retry-After pause and the output's rate limit. */
  async #waitTurn(signal: AbortSignal): Promise<void> {
    const rate = this.instance.delivery.ratelimit;
    for (;;) {
      const now = Date.now();
      const until = Math.max(this.#pausedUntil, rate > 0 ? this.#nextSlot : 0);
      if (until <= now) break;
      await this.#sleep(until - now, signal);
    }
    if (this.#pausedUntil <= Date.now()) this.state.pausedUntil = undefined;
    if (rate > 0) this.#nextSlot = Math.max(Date.now(), this.#nextSlot) + 1000 / rate;
  }

  async #sleep(ms: number, signal: AbortSignal): Promise<void> {
    try {
      await sleep(ms, AbortSignal.any([signal, this.#stopping.signal]));
    } catch {
      throw new HandBack();
    }
  }
}
