/**
 * Time as the pipeline sees it. Injected, so the gatherer, pacer and retries are unit-tested with a
 * fake clock (test/helpers/fake-clock.ts) instead of by polling real time.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

/** setTimeout's largest delay; a longer one would fire at once. */
export const MAX_DELAY_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  // Unref'd: a pending retry or window close must not keep a stopped process alive.
  setTimeout: (fn, ms) => setTimeout(fn, Math.min(ms, MAX_DELAY_MS)).unref(),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

/** Resolves after ms, or rejects with the signal's reason when it aborts first. */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const timer = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Exponential backoff with equal jitter: half the delay is fixed, half random, capped at maxMs. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random = Math.random): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + random() * (base / 2));
}
