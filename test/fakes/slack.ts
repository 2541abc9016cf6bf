/**
 * A local Slack Incoming Webhook. It serves one secret webhook path, records every request (with
 * its arrival time and parsed JSON), and answers from a script like Slack does: `ok`, 429 with
 * Retry-After, 5xx, 4xx with Slack's error word (`invalid_token`, `channel_not_found`, …).
 * The script is used in order and its last reply repeats. Like Slack, it answers a wrong path with
 * 404 `no_service`, a body that is not JSON with 400 `invalid_payload`, and a message with neither
 * text nor attachments with 400 `no_text` (these do not use the script).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';

export interface SlackReply {
  status: number;
  body?: string;
  headers?: Record<string, string>;
  /** Wait this long before answering (to provoke timeouts). */
  delayMs?: number;
}

/** Slack's own answers. */
export const slackReplies = {
  ok: (): SlackReply => ({ status: 200, body: 'ok' }),
  rateLimited: (retryAfterSeconds: number): SlackReply => ({ status: 429, body: 'rate_limited', headers: { 'retry-after': String(retryAfterSeconds) } }),
  serverError: (status = 500): SlackReply => ({ status, body: 'internal_error' }),
  invalidToken: (): SlackReply => ({ status: 403, body: 'invalid_token' }),
  channelNotFound: (): SlackReply => ({ status: 404, body: 'channel_not_found' }),
  invalidPayload: (): SlackReply => ({ status: 400, body: 'invalid_payload' }),
};

export interface SlackRequest {
  /** Arrival time, epoch ms. */
  at: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The body as sent, byte for byte (utf-8). */
  raw: string;
  /** The parsed body, or undefined when it was not JSON. */
  json: any;
  /** What the fake answered. */
  status: number;
}

export interface FakeSlack {
  /** The webhook URL, secret path included. */
  url: string;
  /** The secret part of the path, to look for in logs and errors. */
  token: string;
  /** The whole secret path (`/services/T…/B…/token`). */
  path: string;
  port: number;
  requests: SlackRequest[];
  /** Parsed bodies of the messages Slack accepted (2xx), in arrival order. */
  messages(): any[];
  script(replies: SlackReply[]): void;
  close(): Promise<void>;
}

const id = (n: number) => randomBytes(n).toString('hex').toUpperCase().slice(0, n);

export async function startFakeSlack(replies: SlackReply[] = [slackReplies.ok()]): Promise<FakeSlack> {
  let script = [...replies];
  const token = randomBytes(12).toString('hex');
  const path = `/services/T${id(8)}/B${id(10)}/${token}`;
  const requests: SlackRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let json: any;
      try {
        json = JSON.parse(raw);
      } catch {
        json = undefined;
      }
      let reply: SlackReply;
      if (req.method !== 'POST' || req.url !== path) reply = { status: 404, body: 'no_service' };
      else if (json === undefined || typeof json !== 'object' || json === null) reply = slackReplies.invalidPayload();
      else if (!json.text && !(Array.isArray(json.attachments) && json.attachments.length > 0)) reply = { status: 400, body: 'no_text' };
      else reply = script.length > 1 ? script.shift()! : script[0];
      requests.push({ at: Date.now(), method: req.method ?? '', path: req.url ?? '', headers: req.headers, raw, json, status: reply.status });
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(reply.status, { 'content-type': 'text/html', ...(reply.headers ?? {}) });
        res.end(reply.body ?? '');
      };
      if (reply.delayMs) setTimeout(send, reply.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}${path}`,
    token,
    path,
    port,
    requests,
    messages: () => requests.filter((r) => r.status >= 200 && r.status < 300).map((r) => r.json),
    script: (r) => {
      script = [...r];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
