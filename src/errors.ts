/**
 * Every error the router raises on purpose, in one catalogue. Each has a stable `code` (as fastify's
 * FST_ERR_* and BullMQ's error classes), so logs, tests and callers can tell them apart without
 * matching message text.
 */

export type ErrorCode =
  /** The configuration (file, environment) is not valid; `problems` lists each with its key path. */
  | 'FR_ERR_CONFIG'
  /** A matcher (`name="value"`, `name=~"regex"`, …) does not parse; `column` says where, when it came as text. */
  | 'FR_ERR_MATCHER'
  /** A request body is not a valid Falco alert; the message says which field and why. */
  | 'FR_ERR_BAD_EVENT'
  /** A request the ingest side refuses before reading the alert (body too large, bad gzip). */
  | 'FR_ERR_BAD_REQUEST'
  /** A silence the API refuses (no matchers, a bad matcher, times, unknown outputs, limits): 400 with the reason. */
  | 'FR_ERR_SILENCE'
  /** The queue cannot take events (Redis unreachable, memory bound reached): ingest answers 503. */
  | 'FR_ERR_QUEUE_UNAVAILABLE'
  /** A delivery stopped early (shutdown, reload) and went back to its queue; not a failure. */
  | 'FR_ERR_HANDED_BACK'
  /** A send to an output failed; `reason` and `retryable` say what the pipeline does next. */
  | 'FR_ERR_OUTPUT';

export abstract class RouterError extends Error {
  abstract readonly code: ErrorCode;
}

export class ConfigError extends RouterError {
  readonly code = 'FR_ERR_CONFIG';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** The message names the column (1-based, in characters) when the matcher came as text: `unexpected '=' at column 14`. */
export class MatcherError extends RouterError {
  readonly code = 'FR_ERR_MATCHER';
  name = 'MatcherError';
  constructor(
    message: string,
    /** 1-based column in the matcher text; absent for the object form (`{name, value, isRegex}`). */
    readonly column?: number,
  ) {
    super(message);
  }
}

/** Why a body is not an alert; a label value of falco_router_events_rejected_total. */
export type BadEventReason = 'emptyBody' | 'plainText' | 'invalidEvent';

/** The message is shown to the sender. */
export class BadEventError extends RouterError {
  readonly code = 'FR_ERR_BAD_EVENT';
  name = 'BadEventError';
  constructor(
    message: string,
    readonly reason: BadEventReason = 'invalidEvent',
  ) {
    super(message);
  }
}

export class BadRequestError extends RouterError {
  readonly code = 'FR_ERR_BAD_REQUEST';
  name = 'BadRequestError';
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** The message is shown to the API client; `matcher` and `column` locate a bad matcher. */
export class SilenceError extends RouterError {
  readonly code = 'FR_ERR_SILENCE';
  name = 'SilenceError';
  constructor(
    message: string,
    readonly where: { matcher?: number; column?: number } = {},
  ) {
    super(message);
  }
}

export class QueueUnavailableError extends RouterError {
  readonly code = 'FR_ERR_QUEUE_UNAVAILABLE';
  name = 'QueueUnavailableError';
  /** @param outputs the outputs whose events were not stored, when the others' were; absent: none was stored. */
  constructor(
    message: string,
    readonly outputs?: ReadonlySet<string>,
  ) {
    super(message);
  }
}

export class HandBack extends RouterError {
  readonly code = 'FR_ERR_HANDED_BACK';
  name = 'HandBack';
  constructor() {
    super('delivery handed back to the queue');
  }
}

/** Failure reasons; they double as metric labels and log fields. */
export type FailureReason = 'clientError' | 'serverError' | 'authError' | 'rateLimited' | 'timeout' | 'network' | 'other';

export interface OutputErrorInfo {
  reason: FailureReason;
  retryable: boolean;
  /** How long the destination asked us to wait (Retry-After), in ms. */
  retryAfterMs?: number;
  /** HTTP status or service error code, when there was one. */
  status?: number | string;
}

/** The one error an adapter throws (or reports per event), so the pipeline can decide what to do. */
export class OutputError extends RouterError {
  readonly code = 'FR_ERR_OUTPUT';
  name = 'OutputError';
  readonly reason: FailureReason;
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
  readonly status?: number | string;

  constructor(message: string, info: OutputErrorInfo) {
    super(message);
    this.reason = info.reason;
    this.retryable = info.retryable;
    this.retryAfterMs = info.retryAfterMs;
    this.status = info.status;
  }

  /** The same classification with another message (redaction). */
  withMessage(message: string): OutputError {
    return new OutputError(message, this);
  }

  /** Anything an adapter throws that is not an OutputError is a retryable unknown failure. */
  static from(err: unknown): OutputError {
    if (err instanceof OutputError) return err;
    const e = err as { name?: string; message?: string; code?: string };
    if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return new OutputError('attempt timed out', { reason: 'timeout', retryable: true });
    return new OutputError(e?.message ?? String(err), { reason: 'other', retryable: true, status: e?.code });
  }
}

/** Classifies an HTTP status the same way for every HTTP output (design.md, error classification). */
export function classifyStatus(status: number): OutputErrorInfo {
  if (status === 408) return { reason: 'timeout', retryable: true, status };
  if (status === 429) return { reason: 'rateLimited', retryable: true, status };
  if (status === 401 || status === 403) return { reason: 'authError', retryable: false, status };
  if (status >= 500) return { reason: 'serverError', retryable: true, status };
  return { reason: 'clientError', retryable: false, status };
}
