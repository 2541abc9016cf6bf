/**
 * Dedup and throttle windows in the process (memory driver), with the same semantics as the Redis
 * script in redis-windows.ts: a window opens at its key's first alert and lasts windowMs; each
 * alert gets its number in the window (counted once per uuid); what is over the limit is held back
 * and summed up for the window's summary. At most MAX_OPEN_WINDOWS windows are open per output
 * and stage; beyond, an alert whose key has none goes into the stage's overflow window. A window
 * that held nothing is forgotten once over; one that held something is ended and taken by its
 * close job (take), and forgotten once its summary went out (drop).
 *
 * Counted once per uuid without a record per alert in the window. Redis keeps one (its jobs
 * outlive a crash); here it grew with every alert held back (510 MB for a million in one window,
 * outside queue.maxevents). Instead a window keeps the uuids it let through (at most its limit),
 * and a job keeps where its own alerts were held back (JobMemo): the memory queue keeps the job
 * across a hand-back, so a run after it counts them once, and the memo goes with the job. A cap
 * per window would still grow with the number of windows, and count twice beyond it. The one
 * difference from Redis: an alert held back that comes again in another job (the same uuid posted
 * twice) is counted again; a dead letter put back while its window is open was let through
 * there, and is let through again, as with Redis.
 */
import { MAX_LISTED, MAX_OPEN_WINDOWS, OVERFLOW_HASH, OVERFLOW_KEY } from '../pipeline/summary.ts';
import type { WindowAggregate, WindowCount, WindowHit, WindowRef } from './types.ts';

interface Window {
  start: number;
  end: number;
  n: number;
  closeScheduled: boolean;
  /** The uuids let through, with their number: at most the stage's limit. */
  passed: Map<string, number>;
  agg?: WindowAggregate & { firstMs: number; lastMs: number };
}

/** Where a job's alerts were held back, by `<kind>|<uuid>`: kept with the job across hand-backs. */
export type JobMemo = Map<string, { hash: string; start: number; n: number }>;

/** The open windows of one output's stage (dedup or throttle). */
interface Stage {
  /** By key hash, the overflow window's included. */
  byHash: Map<string, Window>;
  /**
   * The same windows by length, each length's in the order they opened, which is the order they
   * end: those over are at the front and are forgotten in passing. Not one list for the stage: a
   * reload can shorten its window (the memory queue outlives reloads), and windows that ended
   * behind a longer one still open would count toward MAX_OPEN_WINDOWS, sending new keys to the
   * overflow window early.
   */
  byLength: Map<number, Map<string, Window>>;
}

export class MemoryWindows {
  /** Open windows by output and stage. */
  readonly #open = new Map<string, Stage>();
  /** Windows that held something and wait for their close job, by ref. */
  readonly #closing = new Map<string, Window>();

  /** `memo`: the job the hits come from, so that its alerts held back before a hand-back count once. */
  count(output: string, hits: readonly WindowHit[], now: number, memo?: JobMemo): WindowCount[] {
    return hits.map((h) => {
      const stage = this.#stageOf(`${output}|${h.kind}`, now);
      const open = stage.byHash;
      const full = open.size - (open.has(OVERFLOW_HASH) ? 1 : 0) >= MAX_OPEN_WINDOWS;
      const hash = open.has(h.hash) || !full ? h.hash : OVERFLOW_HASH;
      const id = `${output}|${h.kind}|${hash}`;
      let w = open.get(hash);
      if (!w || w.end <= now) {
        // A window taken in this same millisecond keeps its start (its close job's ref): the next one starts after.
        let start = now;
        while (this.#closing.has(`${id}|${start}`)) start++;
        if (w) forget(stage, hash, w);
        w = { start, end: start + h.windowMs, n: 0, closeScheduled: false, passed: new Map() };
        open.set(hash, w);
        let same = stage.byLength.get(h.windowMs);
        if (!same) stage.byLength.set(h.windowMs, (same = new Map()));
        same.set(hash, w);
      }
      const seen = `${h.kind}|${h.uuid}`;
      const before = memo?.get(seen);
      let n = w.passed.get(h.uuid) ?? (before?.hash === hash && before.start === w.start ? before.n : undefined);
      const counted = n === undefined;
      if (n === undefined) {
        n = ++w.n;
        if (n <= h.limit) w.passed.set(h.uuid, n);
        else {
          memo?.set(seen, { hash, start: w.start, n });
          // The key is parsed once per window, when it first holds something back, not per alert.
          w.agg ??= {
            held: 0,
            end: w.end,
            key: hash === OVERFLOW_HASH ? OVERFLOW_KEY : (JSON.parse(h.key) as Array<[string, string]>),
            byPriority: {},
            hostnames: [],
            pods: [],
            rules: [],
            first: h.time,
            last: h.time,
            firstMs: h.timeMs,
            lastMs: h.timeMs,
          };
          const a = w.agg;
          a.held++;
          a.byPriority[h.priority] = (a.byPriority[h.priority] ?? 0) + 1;
          for (const [list, v] of [[a.hostnames, h.hostname], [a.pods, h.pod], [a.rules, h.rule]] as const) if (v && list.length < MAX_LISTED && !list.includes(v)) list.push(v);
          if (h.timeMs < a.firstMs) [a.firstMs, a.first] = [h.timeMs, h.time];
          if (h.timeMs > a.lastMs) [a.lastMs, a.last] = [h.timeMs, h.time];
          this.#closing.set(`${id}|${w.start}`, w);
        }
      }
      return { n, counted, hash, start: w.start, end: w.end, needsClose: n > h.limit && !w.closeScheduled };
    });
  }

  scheduled(output: string, ref: WindowRef): void {
    const w = this.#closing.get(key(output, ref));
    if (w) w.closeScheduled = true;
  }

  /** Ends the window if it is still open (later alerts open a new one) and returns what it held back, until drop. */
  take(output: string, ref: WindowRef): WindowAggregate | undefined {
    const stage = this.#open.get(`${output}|${ref.kind}`);
    const w = stage?.byHash.get(ref.hash);
    if (stage && w?.start === ref.start) forget(stage, ref.hash, w);
    const a = this.#closing.get(key(output, ref))?.agg;
    if (!a) return undefined;
    const { firstMs: _f, lastMs: _l, ...agg } = a;
    return agg;
  }

  drop(output: string, ref: WindowRef): void {
    this.#closing.delete(key(output, ref));
  }

  /** uuids the open windows keep (at most each one's limit): what does not grow with the alerts held back. */
  uuidsKept(): number {
    let n = 0;
    for (const stage of this.#open.values()) for (const w of stage.byHash.values()) n += w.passed.size;
    return n;
  }

  /** Alerts held back by the output's windows whose summary has not gone out. */
  heldBack(output: string): number {
    let n = 0;
    for (const [k, w] of this.#closing) if (k.startsWith(`${output}|`)) n += w.agg?.held ?? 0;
    return n;
  }

  /** A stage's open windows, less those over (what they held is in #closing until their close job). */
  #stageOf(id: string, now: number): Stage {
    let stage = this.#open.get(id);
    if (!stage) this.#open.set(id, (stage = { byHash: new Map(), byLength: new Map() }));
    for (const [length, same] of stage.byLength) {
      for (const [hash, w] of same) {
        if (w.end > now) break;
        same.delete(hash);
        stage.byHash.delete(hash);
      }
      if (same.size === 0) stage.byLength.delete(length);
    }
    return stage;
  }
}

function forget(stage: Stage, hash: string, w: Window): void {
  stage.byHash.delete(hash);
  const length = w.end - w.start;
  const same = stage.byLength.get(length);
  same?.delete(hash);
  if (same?.size === 0) stage.byLength.delete(length);
}

const key = (output: string, ref: WindowRef) => `${output}|${ref.kind}|${ref.hash}|${ref.start}`;
