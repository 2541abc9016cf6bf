import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { OutputError, classifyStatus, toOutputError } from '../delivery/output-error.ts';

/** Global client TLS files (falcosidekick's mutualtlsclient.*, mutualtlsfilespath, tlsclient.cacertfile). */
export interface ClientTlsFiles {
  certfile: string;
  keyfile: string;
  cacertfile: string;
  /** Extra CA for every HTTP output (tlsclient.cacertfile); '' for none. */
  extracafile: string;
}

export interface HttpTargetOptions {
  checkcert: boolean;
  mutualtls: boolean;
  tls: ClientTlsFiles;
  connections: number;
}

/** A keep-alive connection pool for one output instance, with its TLS settings. */
export function createAgent(o: HttpTargetOptions): Agent {
  const connect: Record<string, unknown> = {};
  if (o.mutualtls) {
    connect.cert = readFileSync(o.tls.certfile);
    connect.key = readFileSync(o.tls.keyfile);
    connect.ca = readFileSync(o.tls.cacertfile);
    connect.rejectUnauthorized = true;
  } else if (!o.checkcert) {
    connect.rejectUnauthorized = false;
  } else if (o.tls.extracafile) {
    connect.ca = [readFileSync(o.tls.extracafile)];
  }
  return new Agent({ connections: o.connections, keepAliveTimeout: 30_000, connect });
}

export interface HttpResult {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** Sends a request; network failures become retryable OutputErrors with the URL redacted. */
export async function httpSend(
  agent: Agent,
  url: string,
  init: { method: 'POST' | 'PUT'; headers: Record<string, string>; body: string; signal: AbortSignal },
): Promise<HttpResult> {
  try {
    const res = await request(url, { ...init, dispatcher: agent });
    const body = await res.body.text();
    return { status: res.statusCode, body, headers: res.headers };
  } catch (err) {
    const e = toOutputError(err);
    if (e.reason === 'timeout') throw e;
    const code = (err as { code?: string }).code;
    throw new OutputError(`request to ${redactUrl(url)} failed: ${redactText((err as Error).message, url)}`, {
      reason: 'network',
      retryable: true,
      status: code,
    });
  }
}

/** Throws the classified OutputError for a non-2xx answer; the body is kept as the reason. */
export function assertOk(res: HttpResult, what: string, okStatuses: readonly number[] = [200, 201, 202, 204]): void {
  if (okStatuses.includes(res.status)) return;
  const info = classifyStatus(res.status);
  if (info.retryable) info.retryAfterMs = parseRetryAfter(res.headers['retry-after']);
  const detail = res.body.trim().slice(0, 300);
  throw new OutputError(`${what} answered ${res.status}${detail ? `: ${detail}` : ''}`, info);
}

/** Retry-After in seconds or as an HTTP date, in ms; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Keeps scheme, host and port; path, query and credentials may carry tokens (Slack URLs do). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    const hidden = u.pathname !== '/' || u.search !== '' || u.username !== '' ? '/***' : '/';
    return `${u.protocol}//${u.host}${hidden}`;
  } catch {
    return '***';
  }
}

/** Removes a secret URL (and its path) from a message that may quote it. */
export function redactText(text: string, url: string): string {
  let out = text.split(url).join(redactUrl(url));
  try {
    const u = new URL(url);
    if (u.pathname.length > 1) out = out.split(u.pathname).join('/***');
  } catch {
    /* not a URL: nothing more to hide */
  }
  return out;
}
