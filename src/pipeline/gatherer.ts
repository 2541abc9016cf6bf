/**
 * The one place where an output's events wait to be sent: lanes of items, each with a flush
 * policy, sharing the instance's send slots (delivery.concurrency). A lane sends a batch when a
 * slot is free and either `maxBatch` items wait or the oldest has waited `lingerMs` (or, once
 * hurried on stop, at once). Under load, items gather while every slot is busy, so the number of
 * sends stays near the destination's pace; when idle, an item goes at once (linger 0).
 *
 * Lanes: the ordinary send (delivery.maxbatch, delivery.linger; maxbatch 1 is one event per send),
 * and summaries (flood control). Throttling summaries join the summary lane rather than adding a
 * mechanism of their own.
 */
import type { Clock } from './clock.ts';

export interface FlushPolicy {
  maxBatch: number;
  lingerMs: number;
}

export interface LaneHandle<T> {
  add(items: readonly T[]): void;
  /** Removes every waiting item (hand-back on stop). */
  take(): T[];
}

interface Lane<T> {
  policy: FlushPolicy;
  /** FIFO, with when each item arrived. */
  waiting: Array<{ item: T; since: number }>;
  send: (batch: T[]) => Promise<void>;
}

export class Gatherer<T> {
  readonly #lanes: Lane<T>[] = [];
  #free: number;
  #timer: unknown;
  #timerAt = Infinity;
  #hurry = false;

  constructor(
    slots: number,
    private readonly clock: Clock,
  ) {
    this.#free = slots;
  }

  /**
   * A lane, served before the lanes added after it. `send` owns the batch until it resolves (it
   * settles or hands back every item itself) and must not reject.
   */
  lane(policy: FlushPolicy, send: (batch: T[]) => Promise<void>): LaneHandle<T> {
    const lane: Lane<T> = { policy, waiting: [], send };
    this.#lanes.push(lane);
    return {
      add: (items) => {
        const since = this.clock.now();
        for (const item of items) lane.waiting.push({ item, since });
        if (items.length > 0) this.#dispatch();
      },
      take: () => lane.waiting.splice(0).map((w) => w.item),
    };
  }

  /** Waiting items (all lanes). */
  get waiting(): number {
    return this.#lanes.reduce((n, l) => n + l.waiting.length, 0);
  }

  /** From now on nothing lingers: what waits goes out with the next free slot (stop). */
  hurry(): void {
    this.#hurry = true;
    this.#dispatch();
  }

  #ready(lane: Lane<T>, now: number): boolean {
    const n = lane.waiting.length;
    return n > 0 && (this.#hurry || n >= lane.policy.maxBatch || now - lane.waiting[0].since >= lane.policy.lingerMs);
  }

  #dispatch(): void {
    const now = this.clock.now();
    while (this.#free > 0) {
      const lane = this.#lanes.find((l) => this.#ready(l, now));
      if (!lane) break;
      const batch = lane.waiting.splice(0, lane.policy.maxBatch).map((w) => w.item);
      this.#free--;
      void lane
        .send(batch)
        .catch(() => {})
        .finally(() => {
          this.#free++;
          this.#dispatch();
        });
    }
    this.#schedule(now);
  }

  /** One timer, for the earliest lane that will be ready by lingering; none while no slot is free. */
  #schedule(now: number): void {
    let at = Infinity;
    if (this.#free > 0 && !this.#hurry) {
      for (const l of this.#lanes) if (l.waiting.length > 0) at = Math.min(at, l.waiting[0].since + l.policy.lingerMs);
    }
    if (at === this.#timerAt) return;
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = at;
    if (at === Infinity) return;
    this.#timer = this.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#dispatch();
    }, Math.max(0, at - now));
  }
}
