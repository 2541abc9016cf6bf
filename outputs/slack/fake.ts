/**
 * A local Slack Incoming Webhook. It serves one secret webhook path, records every request (with
 * its arrival time and parsed JSON), and answers from a script like Slack does: `ok`, 429 with
 * Retry-After, 5xx, 4xx with Slack's error word (`invalid_token`, `channel_not_found`, …; the
 * words and statuses of api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks).
 * The script is used in order and its last reply repeats. Like Slack, it answers a wrong path with
 * 404 `no_service`, a body that is not JSON with 400 `invalid_payload`, and a message with neither
 * text nor attachments with 400 `no_text` (these do not use the script).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startHttpSink, type Reply, type Recorded } from '../sdk/testkit/http-sink.ts';

export type SlackReply = Reply;

/** Slack's own answers. */
export const slackReplies = {
  ok: (): SlackReply => ({ status: 200, body: 'ok' }),
  rateLimited: (retryAfterSeconds: number): SlackReply => ({ status: 429, body: 'rate_limited', headers: { 'retry-after': String(retryAfterSeconds) } }),
  serverError: (status = 500): SlackReply => ({ status, body: 'rollup_error' }),
  invalidPayload: (): SlackReply => ({ status: 400, body: 'invalid_payload' }),
  userNotFound: (): SlackReply => ({ status: 400, body: 'user_not_found' }),
  invalidToken: (): SlackReply => ({ status: 403, body: 'invalid_token' }),
  actionProhibited: (): SlackReply => ({ status: 403, body: 'action_prohibited' }),
  channelNotFound: (): SlackReply => ({ status: 404, body: 'channel_not_found' }),
  noService: (): SlackReply => ({ status: 404, body: 'no_service' }),
  channelIsArchived: (): SlackReply => ({ status: 410, body: 'channel_is_archived' }),
};

/** The `test.n` marker of a message about falcoEvent(n): its output line ends `n=<n>)`. */
export function markerOfMessage(message: { attachments?: Array<{ fallback?: string }> }): number {
  const m = /\bn=(\d+)\)$/.exec(message.attachments?.[0]?.fallback ?? '');
  if (!m) throw new Error(`no marker in ${JSON.stringify(message).slice(0, 200)}`);
  return Number(m[1]);
}

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
  /** What the fake answered, or will answer when its reply is delayed. */
  status: number;
  /** False while a delayed answer has not gone out, or when the client gave up before it did. */
  readonly answered: boolean;
}

export interface FakeSlack {
  /** The webhook URL, secret path included. */
  url: string;
  /** The secret part of the path, to look for in logs and errors. */
  token: string;
  /** The whole secret path (`/services/T…/B…/token`). */
  path: string;
  port: number;
  /** The requests so far (a fresh snapshot on each read). */
  readonly requests: SlackRequest[];
  /** Parsed bodies of the messages Slack accepted (a 2xx that went out), in arrival order. */
  messages(): any[];
  script(replies: SlackReply[]): void;
  close(): Promise<void>;
}

const id = (n: number) => randomBytes(n).toString('hex').toUpperCase().slice(0, n);

export async function startFakeSlack(replies: SlackReply[] = [slackReplies.ok()]): Promise<FakeSlack> {
  const token = randomBytes(12).toString('hex');
  const path = `/services/T${id(8)}/B${id(10)}/${token}`;
  const parse = (raw: string): any => {
    try {
      return JSON.parse(raw);
    } catch {
      return undefined;
    }
  };
  const sink = await startHttpSink(replies, {
    path,
    headers: { 'content-type': 'text/html' },
    answer: ({ method, url, body }) => {
      const json = parse(body);
      if (method !== 'POST' || url !== path) return { status: 404, body: 'no_service' };
      if (json === undefined || typeof json !== 'object' || json === null) return slackReplies.invalidPayload();
      if (!json.text && !(Array.isArray(json.attachments) && json.attachments.length > 0)) return { status: 400, body: 'no_text' };
      return undefined;
    },
  });
  // Parsed once per request, when a test first looks.
  const seen = new WeakMap<Recorded, SlackRequest>();
  const view = (r: Recorded): SlackRequest => {
    let v = seen.get(r);
    if (!v) {
      v = {
        at: r.at,
        method: r.method,
        path: r.url,
        headers: r.headers,
        raw: r.body,
        json: parse(r.body),
        status: r.status,
        get answered() {
          return r.answered;
        },
      };
      seen.set(r, v);
    }
    return v;
  };
  return {
    url: sink.url,
    token,
    path,
    port: sink.port,
    get requests() {
      return sink.requests.map(view);
    },
    // A hung reply has a 2xx status but never reached the router: not a message Slack took.
    messages: () => sink.requests.filter((r) => r.answered && r.status >= 200 && r.status < 300).map((r) => view(r).json),
    script: (r) => sink.script(r),
    close: () => sink.close(),
  };
}
