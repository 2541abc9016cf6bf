/**
 * When an output may be sent to next: its rate limit (delivery.ratelimit, sends per second) and a
 * pause the destination asked for (Retry-After). Shared by every send of the instance, so a 429 on
 * one send holds back the others too.
 */
import { sleep, type Clock } from './clock.ts';

export class Pacer {
  #pausedUntil = 0;
  #nextSlot = 0;

  constructor(
    private readonly ratePerSecond: number,
    private readonly clock: Clock,
  ) {}

  /** While a Retry-After pause lasts, its end (epoch ms). */
  get pausedUntil(): number | undefined {
    return this.#pausedUntil > this.clock.now() ? this.#pausedUntil : undefined;
  }

  pause(ms: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, this.clock.now() + ms);
  }

  /** Waits out the pause and the rate limit, then books the next send. Rejects when `signal` aborts. */
  async turn(signal: AbortSignal): Promise<void> {
    const rate = this.ratePerSecond;
    for (;;) {
      const now = this.clock.now();
      const until = Math.max(this.#pausedUntil, rate > 0 ? this.#nextSlot : 0);
      if (until <= now) break;
      await sleep(this.clock, until - now, signal);
    }
    if (rate > 0) this.#nextSlot = Math.max(this.clock.now(), this.#nextSlot) + 1000 / rate;
  }
}
