/**
 * Turns an AWS SDK v3 failure into the router's OutputError. The SDK's own retries are off
 * (maxAttempts 1 in AwsSetup.client), so this is where "worth retrying" is decided, once for every
 * AWS output: throttling, 5xx, network failures, expired or unavailable credentials retry;
 * bad requests and denied access do not.
 */
import { OutputError, type OutputErrorInfo } from '../../../src/errors.ts';

/** Error codes AWS services use for throttling (the SDK's own list, plus SNS and KMS names). */
const THROTTLING = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'Throttled',
  'RequestThrottledException',
  'RequestThrottled',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'LimitExceededException',
  'SlowDown',
  'PriorRequestNotComplete',
  'KMSThrottlingException',
  'KMSThrottling',
]);

const AUTH = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'AuthorizationError',
  'AuthorizationErrorException',
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'InvalidSignatureException',
  'IncompleteSignature',
  'IncompleteSignatureException',
  'MissingAuthenticationToken',
  'MissingAuthenticationTokenException',
  'NotAuthorized',
  'OptInRequired',
  'KMSAccessDeniedException',
  'KMSAccessDenied',
  'KMSDisabledException',
  'KMSDisabled',
  'KMSInvalidStateException',
  'KMSNotFoundException',
]);

/** Credentials that can come right on their own: expired session, unreachable IMDS/IRSA endpoint. */
const AUTH_TRANSIENT = new Set(['ExpiredToken', 'ExpiredTokenException', 'RequestExpired', 'CredentialsProviderError', 'TokenProviderError', 'IDPCommunicationError']);

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET']);

export interface AwsErrorLike {
  name?: string;
  message?: string;
  code?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
  $retryable?: { throttling?: boolean };
}

/** True for the error codes AWS uses for throttling (also as the Code of a failed batch entry). */
export function isThrottlingCode(code: string): boolean {
  return THROTTLING.has(code);
}

/** The error code of an SDK error ("ThrottlingException"), or its Node code for network errors. */
export function awsErrorCode(err: unknown): string {
  const e = err as AwsErrorLike;
  return e?.name && e.name !== 'Error' ? e.name : (e?.code ?? 'Error');
}

/** Classifies an SDK error. `what` says where it happened ("CloudWatch Logs PutLogEvents"). */
export function classifyAwsError(err: unknown, what: string): OutputError {
  if (err instanceof OutputError) return err;
  const e = (err ?? {}) as AwsErrorLike;
  const code = awsErrorCode(err);
  const status = e.$metadata?.httpStatusCode;
  const message = `${what} failed: ${code}${e.message && e.message !== code ? `: ${e.message}` : ''}`;
  const info = classify(code, status, e);
  return new OutputError(message, { ...info, status: status ?? code });
}

function classify(code: string, status: number | undefined, e: AwsErrorLike): OutputErrorInfo {
  if (code === 'AbortError' || code === 'TimeoutError' || code === 'RequestTimeout' || code === 'RequestTimeoutException' || status === 408) {
    return { reason: 'timeout', retryable: true };
  }
  if (THROTTLING.has(code) || e.$retryable?.throttling || status === 429) return { reason: 'rateLimited', retryable: true };
  if (AUTH_TRANSIENT.has(code)) return { reason: 'authError', retryable: true };
  if (AUTH.has(code) || status === 401 || status === 403) return { reason: 'authError', retryable: false };
  if ((status !== undefined && status >= 500) || e.$fault === 'server' || code === 'ServiceUnavailableException' || code === 'InternalFailure') {
    return { reason: 'serverError', retryable: true };
  }
  if (status === undefined) {
    // No HTTP answer at all: connection refused or reset, DNS, TLS, socket timeout.
    if (NETWORK_CODES.has(code) || NETWORK_CODES.has(e.code ?? '') || e.$fault === undefined) return { reason: 'network', retryable: true };
  }
  return { reason: 'clientError', retryable: false };
}
