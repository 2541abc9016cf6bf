import type { StoredEvent } from '../event/stored-event.ts';

/** Failure reasons; they double as metric labels and log fields. */
export type FailureReason =
  | 'clientError'
  | 'serverError'
  | 'authError'
  | 'rateLimited'
  | 'timeout'
  | 'network'
  | 'other';

export interface OutputErrorInfo {
  reason: FailureReason;
  retryable: boolean;
  /** How long the destination asked us to wait (Retry-After), in ms. */
  retryAfterMs?: number;
  /** HTTP status or service error code, when there was one. */
  status?: number | string;
  /**
   * For a batch that went out in part: the events that did not. When the error is final only
   * these are dead-lettered (the adapter itself skips the others on a retry).
   */
  undelivered?: readonly StoredEvent[];
}

/** The one error an adapter throws, so the delivery worker can decide what to do. */
export class OutputError extends Error {
  readonly reason: FailureReason;
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
  readonly status?: number | string;
  readonly undelivered?: readonly StoredEvent[];

  constructor(message: string, info: OutputErrorInfo) {
    super(message);
    this.name = 'OutputError';
    this.reason = info.reason;
    this.retryable = info.retryable;
    this.retryAfterMs = info.retryAfterMs;
    this.status = info.status;
    this.undelivered = info.undelivered;
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

/** Any non-OutputError thrown by an adapter is treated as a retryable unknown failure. */
export function toOutputError(err: unknown): OutputError {
  if (err instanceof OutputError) return err;
  const e = err as { name?: string; message?: string; code?: string };
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') {
    return new OutputError('attempt timed out', { reason: 'timeout', retryable: true });
  }
  return new OutputError(e?.message ?? String(err), { reason: 'other', retryable: true, status: e?.code });
}
