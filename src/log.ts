import { pino, type Logger } from 'pino';

/**
 * JSON logs on stdout. Output instances log through a logger that keeps their secrets out
 * (src/pipeline/instance.ts); nothing else here ever logs a setting's value.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { app: 'falco-router' }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? process.stdout);
}

/** Repeats of one line are counted and reported every this long. */
const EVERY_MS = 10_000;

/**
 * For errors that can repeat thousands of times a second (Redis out of memory, a refused write per
 * request during an outage): the first occurrence of a message is logged, later ones within the
 * interval are counted, and the count is logged when the interval ends.
 */
export class RepeatLimiter {
  /** Messages logged in the last interval; each entry ends with its interval. */
  readonly #seen = new Map<string, { repeats: number }>();

  constructor(private readonly logger: Logger) {}

  log(level: 'warn' | 'error', obj: Record<string, unknown>, msg: string): void {
    const s = this.#seen.get(msg);
    if (s) {
      s.repeats++;
      return;
    }
    const entry = { repeats: 0 };
    this.#seen.set(msg, entry);
    this.logger[level](obj, msg);
    setTimeout(() => {
      this.#seen.delete(msg);
      if (entry.repeats > 0) this.logger[level]({ repeats: entry.repeats, seconds: EVERY_MS / 1000 }, `${msg} (repeated ${entry.repeats} times in ${EVERY_MS / 1000} s)`);
    }, EVERY_MS).unref();
  }
}
