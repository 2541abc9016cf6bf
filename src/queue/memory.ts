/**
 * In-process queue: no dependencies, bounded, not durable (a crash loses what is queued).
 * Same contract as the Redis driver; on a graceful stop it keeps delivering until empty or
 * the grace period ends.
 */
import { randomUUID } from 'node:crypto';
import { HandBack, QueueUnavailableError } from '../errors.ts';
import type { Consumer, DeadLetter, JobHandler, QueueDriver, QueueJob, WindowHit, WindowRef } from './types.ts';
import { MemoryWindows, type JobMemo } from './memory-windows.ts';
import { systemClock, type Clock } from '../pipeline/clock.ts';

interface MemJob {
  id: string;
  output: string;
  events: string[];
  done: number;
  attempts: number;
  acceptedAt: number;
  close?: WindowRef;
  /** Where its alerts were held back, for a run after a hand-back (see memory-windows.ts). */
  memo?: JobMemo;
}

interface OutputQueue {
  waiting: MemJob[];
  active: Set<MemJob>;
  /** Events waiting or in flight, for the bound. */
  events: number;
  wakers: Array<() => void>;
}

export class MemoryQueue implements QueueDriver {
  readonly kind = 'memory' as const;
  #queues = new Map<string, OutputQueue>();
  #dead = new Map<string, DeadLetter[]>();
  #seq = 0;
  readonly #windows = new MemoryWindows();
  /** The job behind each handle given to a handler: a job handed back gets a new handle. */
  readonly #jobOf = new WeakMap<QueueJob, MemJob>();
  /**
   * Close jobs scheduled and not done, by id (a window's ref), so that one window is closed once:
   * the output they are for, and the timer of those not due yet.
   */
  readonly #closes = new Map<string, { output: string; job: MemJob; timer?: unknown }>();
  /** Outputs in a graceful stop: their windows are closed now, not at their end. */
  readonly #draining = new Set<string>();

  constructor(
    private readonly maxEventsPerOutput: number,
    private readonly clock: Clock = systemClock,
  ) {}

  #q(output: string): OutputQueue {
    let q = this.#queues.get(output);
    if (!q) {
      q = { waiting: [], active: new Set(), events: 0, wakers: [] };
      this.#queues.set(output, q);
    }
    return q;
  }

  async enqueue(perOutput: ReadonlyMap<string, readonly string[]>, acceptedAt: number): Promise<void> {
    // Each output's bound on its own: a full queue refuses only what goes to that output.
    const full = new Set<string>();
    for (const [output, events] of perOutput) {
      if (this.#q(output).events + events.length > this.maxEventsPerOutput) full.add(output);
      else this.#push(output, [...events], acceptedAt);
    }
    if (full.size > 0) {
      const [first] = full;
      const stored = perOutput.size - full.size;
      throw new QueueUnavailableError(
        `the memory queue of output "${first}" is full (${this.#q(first).events} events waiting; queue.maxevents is ${this.maxEventsPerOutput})${stored > 0 ? `; stored for ${stored} of ${perOutput.size} outputs` : ''}`,
        full,
      );
    }
  }

  #push(output: string, events: string[], acceptedAt: number): void {
    const q = this.#q(output);
    q.waiting.push({ id: String(++this.#seq), output, events, done: 0, attempts: 0, acceptedAt });
    q.events += events.length;
    q.wakers.shift()?.();
  }

  countInWindows(output: string, hits: readonly WindowHit[], job?: QueueJob) {
    const mem = job && this.#jobOf.get(job);
    return Promise.resolve(this.#windows.count(output, hits, this.clock.now(), mem && (mem.memo ??= new Map())));
  }

  async scheduleClose(output: string, ref: WindowRef, at: number): Promise<void> {
    const id = `close|${output}|${ref.kind}|${ref.hash}|${ref.start}`;
    if (!this.#closes.has(id)) {
      const job: MemJob = { id, output, events: [], done: 0, attempts: 0, acceptedAt: Date.now(), close: ref };
      const close: { output: string; job: MemJob; timer?: unknown } = { output, job };
      this.#closes.set(id, close);
      // Stopping: due now, behind the alerts still waiting (they may add to this window), since
      // the process will not see its end.
      if (this.#draining.has(output)) this.#enqueue(output, job, false);
      else close.timer = this.clock.setTimeout(() => this.#due(id, false), Math.max(0, at - this.clock.now()));
    }
    this.#windows.scheduled(output, ref);
  }

  #due(id: string, first: boolean): void {
    const close = this.#closes.get(id);
    if (close?.timer === undefined) return;
    this.clock.clearTimeout(close.timer);
    close.timer = undefined;
    this.#enqueue(close.output, close.job, first);
  }

  #enqueue(output: string, job: MemJob, first: boolean): void {
    const q = this.#q(output);
    if (first) q.waiting.unshift(job);
    else q.waiting.push(job);
    q.wakers.shift()?.();
  }

  /** Alerts held back in windows whose summary has not gone out (logged at stop: they are lost with the process). */
  heldBack(output: string): number {
    return this.#windows.heldBack(output);
  }

  async closeWindow(output: string, ref: WindowRef) {
    return this.#windows.take(output, ref);
  }

  async dropWindow(output: string, ref: WindowRef): Promise<void> {
    this.#windows.drop(output, ref);
  }

  consume(output: string, concurrency: number, handler: JobHandler): Consumer {
    const q = this.#q(output);
    const abort = new AbortController();
    let stopping = false;
    let deadline = Infinity;

    const runOne = async (job: MemJob): Promise<void> => {
      q.active.add(job);
      const handle: QueueJob = {
        ...job,
        progress: async (done, attempts) => {
          q.events -= done - job.done;
          job.done = done;
          job.attempts = attempts;
        },
      };
      this.#jobOf.set(handle, job);
      try {
        await handler(handle, abort.signal);
        q.events -= job.events.length - job.done;
        if (job.close) this.#closes.delete(job.id);
      } catch (err) {
        // HandBack (or an unexpected failure): keep it, at the head, for the next consumer.
        q.waiting.unshift(job);
        // The delivery worker handles its own failures; anything else is a bug, so do not spin on it.
        if (!(err instanceof HandBack)) await new Promise((r) => setTimeout(r, 1000));
      } finally {
        q.active.delete(job);
      }
    };

    const loop = async (): Promise<void> => {
      for (;;) {
        if (stopping && (q.waiting.length === 0 || Date.now() >= deadline)) return;
        const job = q.waiting.shift();
        if (!job) {
          await new Promise<void>((resolve) => q.wakers.push(resolve));
          continue;
        }
        await runOne(job);
      }
    };
    const loops = Array.from({ length: concurrency }, () => loop());

    return {
      stop: async (graceMs: number, drain = true) => {
        // Nothing outlives the process here: windows still open are closed now, their summaries
        // first, so that a slow backlog does not keep them past the grace period. A window's
        // close ends it: alerts counted after that open a new window, closed in turn.
        if (drain) {
          this.#draining.add(output);
          for (const [id, close] of this.#closes) if (close.output === output) this.#due(id, true);
        }
        stopping = true;
        deadline = drain ? Date.now() + graceMs : 0;
        for (const w of q.wakers.splice(0)) w();
        const timer = setTimeout(() => abort.abort(), graceMs);
        try {
          await Promise.allSettled(loops);
        } finally {
          clearTimeout(timer);
        }
      },
    };
  }

  async deadLetter(entries: readonly Omit<DeadLetter, 'id'>[]): Promise<void> {
    for (const e of entries) {
      const list = this.#dead.get(e.output) ?? [];
      list.push({ id: randomUUID(), ...e });
      this.#dead.set(e.output, list);
    }
  }

  async listDeadLetters(output: string, limit = 1000): Promise<DeadLetter[]> {
    return (this.#dead.get(output) ?? []).slice(0, limit);
  }

  async requeueDeadLetters(output: string, ids?: readonly string[]): Promise<number> {
    const list = this.#dead.get(output) ?? [];
    const chosen = ids ? list.filter((d) => ids.includes(d.id)) : list;
    if (chosen.length === 0) return 0;
    this.#push(output, chosen.map((d) => d.event), Date.now());
    this.#dead.set(output, list.filter((d) => !chosen.includes(d)));
    return chosen.length;
  }

  async depth(output: string): Promise<number> {
    return this.#queues.get(output)?.events ?? 0;
  }

  async deadLetterCount(output: string): Promise<number> {
    return this.#dead.get(output)?.length ?? 0;
  }

  ready(): boolean {
    return true;
  }

  async close(): Promise<void> {}
}
