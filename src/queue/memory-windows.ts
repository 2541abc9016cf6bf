/**
 * Dedup and throttle windows in the process (memory driver), with the same semantics as the Redis
 * script in redis-windows.ts: a window opens at its key's first alert and lasts windowMs; each
 * alert gets its number in the window (counted once per uuid); what is over the limit is held back
 * and summed up for the window's summary. A window that held nothing is forgotten once over; one
 * that held something is ended and taken by its close job (take), and forgotten once its summary
 * went out (drop).
 */
import { MAX_LISTED } from '../pipeline/summary.ts';
import type { WindowAggregate, WindowCount, WindowHit, WindowRef } from './types.ts';

interface Window {
  start: number;
  end: number;
  n: number;
  closeScheduled: boolean;
  uuids: Map<string, number>;
  agg?: WindowAggregate & { firstMs: number; lastMs: number };
}

export class MemoryWindows {
  readonly #windows = new Map<string, Window>();
  /** Windows that held something and wait for their close job, by ref. */
  readonly #closing = new Map<string, Window>();
  #sweptAt = 0;

  count(output: string, hits: readonly WindowHit[], now: number): WindowCount[] {
    this.#sweep(now);
    return hits.map((h) => {
      const id = `${output}|${h.kind}|${h.hash}`;
      let w = this.#windows.get(id);
      if (!w || w.end <= now) {
        // A window taken in this same millisecond keeps its start (its close job's ref): the next one starts after.
        let start = now;
        while (this.#closing.has(`${id}|${start}`)) start++;
        w = { start, end: start + h.windowMs, n: 0, closeScheduled: false, uuids: new Map() };
        this.#windows.set(id, w);
      }
      let n = w.uuids.get(h.uuid);
      const counted = n === undefined;
      if (n === undefined) {
        n = ++w.n;
        w.uuids.set(h.uuid, n);
        if (n > h.limit) {
          w.agg ??= { held: 0, end: w.end, key: JSON.parse(h.key), byPriority: {}, hostnames: [], pods: [], rules: [], first: h.time, last: h.time, firstMs: h.timeMs, lastMs: h.timeMs };
          const a = w.agg;
          a.held++;
          a.byPriority[h.priority] = (a.byPriority[h.priority] ?? 0) + 1;
          for (const [list, v] of [[a.hostnames, h.hostname], [a.pods, h.pod], [a.rules, h.rule]] as const) if (v && list.length < MAX_LISTED && !list.includes(v)) list.push(v);
          if (h.timeMs < a.firstMs) [a.firstMs, a.first] = [h.timeMs, h.time];
          if (h.timeMs > a.lastMs) [a.lastMs, a.last] = [h.timeMs, h.time];
          this.#closing.set(`${id}|${w.start}`, w);
        }
      }
      return { n, counted, start: w.start, end: w.end, needsClose: n > h.limit && !w.closeScheduled };
    });
  }

  scheduled(output: string, ref: WindowRef): void {
    const w = this.#closing.get(key(output, ref));
    if (w) w.closeScheduled = true;
  }

  /** Ends the window if it is still open (later alerts open a new one) and returns what it held back, until drop. */
  take(output: string, ref: WindowRef): WindowAggregate | undefined {
    const id = `${output}|${ref.kind}|${ref.hash}`;
    if (this.#windows.get(id)?.start === ref.start) this.#windows.delete(id);
    const a = this.#closing.get(key(output, ref))?.agg;
    if (!a) return undefined;
    const { firstMs: _f, lastMs: _l, ...agg } = a;
    return agg;
  }

  drop(output: string, ref: WindowRef): void {
    this.#closing.delete(key(output, ref));
  }

  /** Forgets windows that are over and held nothing (at most once a second). */
  #sweep(now: number): void {
    if (now - this.#sweptAt < 1000) return;
    this.#sweptAt = now;
    for (const [id, w] of this.#windows) if (w.end <= now) this.#windows.delete(id);
  }
}

const key = (output: string, ref: WindowRef) => `${output}|${ref.kind}|${ref.hash}|${ref.start}`;
