/**
 * The HTTP side of every HTTP output: a keep-alive pool with the instance's TLS settings
 * (falcosidekick's checkcert, mutualtls, tlsclient.cacertfile), one request per call, the shared
 * status classification and Retry-After. Secrets in URLs and echoed bodies are left to the
 * pipeline, which redacts every error text once for all outputs.
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { OutputError, classifyStatus } from '../../src/errors.ts';

/** Global client TLS files (falcosidekick's mutualtlsclient.*, mutualtlsfilespath, tlsclient.cacertfile). */
export interface ClientTlsFiles {
  certfile: string;
  keyfile: string;
  cacertfile: string;
  /** Extra CA for every HTTP output (tlsclient.cacertfile); '' for none. */
  extracafile: string;
}

export interface HttpTargetOptions {
  url: string;
  checkcert: boolean;
  mutualtls: boolean;
  tls: ClientTlsFiles;
  /** Connections kept open: the instance's delivery.concurrency. */
  connections: number;
}

export interface HttpRequest {
  method?: 'POST' | 'PUT';
  headers: Record<string, string>;
  body: string;
  signal: AbortSignal;
}

export interface HttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** 2xx answers that mean "taken". */
const OK = new Set([200, 201, 202, 204]);

export class HttpTarget {
  #agent?: Agent;

  constructor(private readonly o: HttpTargetOptions) {}

  /** Reads the certificate files; run from the output's setup(), so a missing file is retried. */
  async setup(): Promise<void> {
    const { tls } = this.o;
    const connect: Record<string, unknown> = {};
    if (this.o.mutualtls) {
      [connect.cert, connect.key, connect.ca] = await Promise.all([readFile(tls.certfile), readFile(tls.keyfile), readFile(tls.cacertfile)]);
      connect.rejectUnauthorized = true;
    } else if (!this.o.checkcert) {
      connect.rejectUnauthorized = false;
    } else if (tls.extracafile) {
      connect.ca = [await readFile(tls.extracafile)];
    }
    await this.#agent?.close();
    this.#agent = new Agent({ connections: this.o.connections, keepAliveTimeout: 30_000, connect });
  }

  /**
   * Sends one request and returns the 2xx answer. Anything else throws the classified OutputError:
   * network failures retry, statuses as classifyStatus says (with Retry-After), and the start of the
   * answer's body is kept as the reason.
   */
  async send(req: HttpRequest, url = this.o.url): Promise<HttpAnswer> {
    const method = req.method ?? 'POST';
    let answer: HttpAnswer;
    try {
      const res = await request(url, { method, headers: req.headers, body: req.body, signal: req.signal, dispatcher: this.#agent });
      answer = { status: res.statusCode, body: await res.body.text(), headers: res.headers };
    } catch (err) {
      const e = OutputError.from(err);
      if (e.reason === 'timeout') throw e;
      const code = (err as { code?: string }).code;
      throw new OutputError(`${method} ${url} failed: ${(err as Error).message}`, { reason: 'network', retryable: true, status: code });
    }
    if (OK.has(answer.status)) return answer;
    const info = classifyStatus(answer.status);
    if (info.retryable) info.retryAfterMs = parseRetryAfter(answer.headers['retry-after']);
    // Kept long: the pipeline shortens error texts only after redacting them, so that a cut cannot
    // leave the start of a secret the answer echoed.
    const detail = answer.body.trim().slice(0, 4096);
    throw new OutputError(`${method} ${url} answered ${answer.status}${detail ? `: ${detail}` : ''}`, info);
  }

  async close(): Promise<void> {
    await this.#agent?.close();
  }
}

/** Retry-After in seconds or as an HTTP date, in ms; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
