import { pino, type Logger } from 'pino';

/** JSON logs on stdout. Secrets are kept out of messages at the source; these paths are a second net. */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { app: 'falco-router' },
      redact: {
        paths: ['webhookurl', 'address', 'customheaders', 'secretaccesskey', 'accesskeyid', 'password', 'token', '*.webhookurl', '*.address', '*.secretaccesskey', '*.customheaders'],
        censor: '***',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? process.stdout,
  );
}
