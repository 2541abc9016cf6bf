import { pino, type Logger } from 'pino';

/**
 * JSON logs on stdout. Output instances log through a logger that keeps their secrets out
 * (src/pipeline/instance.ts); nothing else here ever logs a setting's value.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { app: 'falco-router' }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? process.stdout);
}
