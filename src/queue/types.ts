/**
 * A queue driver stores deliveries per output instance and hands them to the delivery worker.
 * The delivery mechanics (retries, backoff, dead-lettering) live in src/pipeline, once, so both
 * drivers behave the same; a driver only has to store, lease, complete and hand back.
 */

/** One stored delivery: a group of events for one output, written by one ingest round trip. */
export interface QueueJob {
  readonly id: string;
  readonly output: string;
  /** Each event's JSON, as written at ingest. */
  readonly events: readonly string[];
  /** Events already delivered (or dead-lettered); a retry resumes here. */
  readonly done: number;
  /** Failed attempts on events[done]. */
  readonly attempts: number;
  /** When ingest accepted it (epoch ms). */
  readonly acceptedAt: number;
  /** Persists progress so that a crash or a hand-back resumes after the last delivered event. */
  progress(done: number, attempts: number): Promise<void>;
  /** Set on a job that carries no alert but closes a dedup or throttle window (its summary is due). */
  readonly close?: WindowRef;
}

export type WindowKind = 'dedup' | 'throttle';

/** One dedup or throttle window of an output: its key (hashed) and when it opened. */
export interface WindowRef {
  kind: WindowKind;
  hash: string;
  start: number;
}

/** An alert counted in its key's window. */
export interface WindowHit {
  kind: WindowKind;
  hash: string;
  windowMs: number;
  /** Alerts a window lets through; the rest are held back. */
  limit: number;
  /** The alert's uuid: the same alert counted again (a job repeated after a crash) counts once. */
  uuid: string;
  /** What a summary of held-back alerts shows. */
  priority: string;
  hostname: string;
  pod: string;
  rule: string;
  timeMs: number;
  time: string;
  /** The key's fields and values, as JSON [[field, value], …]. */
  key: string;
}

export interface WindowCount {
  /** The alert's number in its window: held back when above the hit's limit. */
  n: number;
  /** Counted now; false when its uuid was already counted in this window (its job ran before). */
  counted: boolean;
  /** The window's key: the hit's, or OVERFLOW_HASH when its output had too many windows open (MAX_OPEN_WINDOWS). */
  hash: string;
  start: number;
  end: number;
  /** The window's close is not known to be scheduled yet. */
  needsClose: boolean;
}

/** What a window held back, read when it closes. */
export interface WindowAggregate {
  held: number;
  end: number;
  key: Array<[string, string]>;
  byPriority: Record<string, number>;
  hostnames: string[];
  pods: string[];
  rules: string[];
  first: string;
  last: string;
}

export interface DeadLetter {
  id: string;
  output: string;
  /** The event JSON, as it would have been delivered. */
  event: string;
  reason: string;
  attempts: number;
  failedAt: string;
}

export type JobHandler = (job: QueueJob, signal: AbortSignal) => Promise<void>;

export interface Consumer {
  /**
   * Stops taking jobs. Running handlers see `signal` aborted after `graceMs` and should hand back.
   * Memory driver with drain: keeps delivering until the queue is empty or the grace period ends;
   * without drain, stops after the jobs in hand (another consumer of the same output takes over).
   */
  stop(graceMs: number, drain?: boolean): Promise<void>;
}

export interface QueueDriver {
  readonly kind: 'memory' | 'redis';
  /**
   * Stores every output's events; resolves once stored (with Redis: written to Redis). Throws
   * QueueUnavailableError, naming the outputs not stored when the others were.
   */
  enqueue(perOutput: ReadonlyMap<string, readonly string[]>, acceptedAt: number): Promise<void>;
  consume(output: string, concurrency: number, handler: JobHandler): Consumer;
  deadLetter(entries: readonly Omit<DeadLetter, 'id'>[]): Promise<void>;
  listDeadLetters(output: string, limit?: number): Promise<DeadLetter[]>;
  /** Puts dead letters back on the output's queue (all when ids is undefined); returns how many. */
  requeueDeadLetters(output: string, ids?: readonly string[]): Promise<number>;
  /** Events waiting or in flight for an output. */
  depth(output: string): Promise<number>;
  deadLetterCount(output: string): Promise<number>;
  /**
   * Counts alerts in their dedup or throttle windows, opening a window where none is open. The
   * time is the driver's own: with Redis, Redis's clock, so replicas whose clocks differ agree.
   * `job` is the job the alerts are from: when it runs again (handed back, or after a crash with
   * Redis), its alerts already counted in a window still open count once.
   */
  countInWindows(output: string, hits: readonly WindowHit[], job?: QueueJob): Promise<WindowCount[]>;
  /** A job that closes the window at `at` (see QueueJob.close); scheduling one window twice schedules it once. */
  scheduleClose(output: string, ref: WindowRef, at: number): Promise<void>;
  /**
   * For the window's close job, in one step: ends the window if it is still the one open (later
   * alerts of its key open a new window, with a close job of its own) and takes what it held back.
   * What was taken is returned again (a close job run again after a crash) until dropWindow;
   * undefined when the window held nothing (or is gone).
   */
  closeWindow(output: string, ref: WindowRef): Promise<WindowAggregate | undefined>;
  /** Forgets what closeWindow took, once its summary is delivered or dead-lettered. */
  dropWindow(output: string, ref: WindowRef): Promise<void>;
  /** True when the backend can take writes. */
  ready(): boolean;
  close(): Promise<void>;
}
