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
  readonly #seen = new Map<string, { at: number; repeats: number; timer?: NodeJS.Timeout }>();

  constructor(private readonly logger: Logger) {}

  log(level: 'warn' | 'error', obj: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const s = this.#seen.get(msg);
    if (s && now - s.at < EVERY_MS) {
      s.repeats++;
      s.timer ??= setTimeout(() => this.#flush(level, msg), s.at + EVERY_MS - now).unref();
      return;
    }
    this.#seen.set(msg, { at: now, repeats: 0 });
    this.logger[level](obj, msg);
  }

  #flush(level: 'warn' | 'error', msg: string): void {
    const s = this.#seen.get(msg);
    if (!s) return;
    this.#seen.delete(msg);
    if (s.repeats > 0) this.logger[level]({ repeats: s.repeats, seconds: EVERY_MS / 1000 }, `${msg} (repeated ${s.repeats} times in ${EVERY_MS / 1000} s)`);
  }
}
