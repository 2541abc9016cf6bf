/**
 * Slack (Incoming Webhook): falcosidekick's attachment message (payload.ts), plus flood control:
 * the pipeline starts at most `delivery.ratelimit` sends (one message each: maxbatch is at most 1)
 * a second, and hands the alerts beyond `delivery.summarizeabove` to sendSummary(), one message
 * with a "N more alerts for rule X in the last M minutes" attachment per rule.
 *
 * Sent with the SDK's HttpTarget (undici), not @slack/webhook: IncomingWebhook.send() takes no
 * AbortSignal, exposes neither Retry-After nor the TLS settings (checkcert, mutualtls), and writes
 * JSON.stringify bodies (no Go HTML escaping, no trailing newline, its own User-Agent).
 */
import { z } from 'zod';
import {
  HttpTarget,
  httpUrl,
  bool,
  goTemplate,
  payloadData,
  stringifyLossless,
  type OutputType,
  type Output,
  type OutputDeps,
  type StoredEvent,
  type SendContext,
  type GoTemplate,
  type SummaryGroup,
} from '../sdk/index.ts';
import { slackPayload, summaryPayload, DEFAULT_FOOTER, type Look, type OutputFormat } from './payload.ts';

export const DEFAULT_ICON = 'https://raw.githubusercontent.com/falcosecurity/falcosidekick/master/imgs/falcosidekick_color.png';
export const DEFAULT_USERNAME = 'Falcosidekick';

const schema = z.object({
  webhookurl: httpUrl.describe('Enables the output: the Incoming Webhook URL (its path is the credential).'),
  channel: z.string().default('').describe("Overrides the webhook's channel; sent only when set."),
  username: z.string().default(DEFAULT_USERNAME).describe("'' omits it (Slack then shows the webhook's own name)."),
  icon: z.string().default(DEFAULT_ICON).describe("icon_url; '' omits it."),
  footer: z.string().default(DEFAULT_FOOTER).describe("'' means falcosidekick's default footer (it cannot be removed, as in falcosidekick)."),
  outputformat: z
    .string()
    .default('all')
    .transform((v, ctx): OutputFormat => {
      const f = v.trim().toLowerCase();
      if (f === '') return 'all';
      if (f === 'all' || f === 'text' || f === 'fields') return f;
      const hint = f === 'field' ? ' (falcosidekick’s docs say "field", but only "fields" works there too)' : '';
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not an output format; use all, text or fields${hint}` });
      return z.NEVER;
    })
    .meta({ type: 'all | text | fields' })
    .describe('all: the output line and the fields; text: the output line only; fields: the fields only.'),
  messageformat: goTemplate('messageformat').describe('A Go template for the top line of the message, e.g. `Rule: {{ .Rule }}`; empty for none.'),
  shownonstringfields: bool.default(false).describe('Not in falcosidekick: also show numeric and boolean output fields (as their exact text).'),
  checkcert: bool.default(true).describe("Verify Slack's (or a proxy's) TLS certificate."),
  mutualtls: bool.default(false).describe('Present the client certificate from mutualtlsfilespath / mutualtlsclient.*.'),
});
export type SlackConfig = z.infer<typeof schema>;

const HEADERS = { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' };

class SlackOutput implements Output {
  readonly #look: Look & { shownonstringfields: boolean };
  readonly #template?: GoTemplate;

  constructor(
    config: SlackConfig,
    private readonly target: HttpTarget,
    private readonly deps: OutputDeps,
  ) {
    const { username, icon, channel, footer, outputformat, shownonstringfields } = config;
    this.#look = { username, icon, channel, footer, outputformat, shownonstringfields };
    this.#template = config.messageformat;
  }

  setup(): Promise<void> {
    return this.target.setup();
  }

  /**
   * One message per alert, each reported as it goes out, so a retry after the third message of a
   * batch starts at the third. A 400 (invalid_payload) refuses that message, not the webhook: the
   * batch goes on. Any other failure (a revoked webhook, an archived channel, a 429, an outage)
   * would hold for every later message too, so it ends the send and fails them all at once.
   */
  async send(batch: readonly StoredEvent[], ctx: SendContext): Promise<void> {
    for (const item of batch) {
      const ev = item.event;
      const text = this.#template ? await this.#template.renderOrEmpty(payloadData(ev), (msg, extra) => this.deps.logger.warn(extra, msg)) : undefined;
      await this.#post(slackPayload(ev, this.#look, text || undefined), ctx.signal);
      ctx.delivered([item]);
    }
  }

  async sendSummary(groups: readonly SummaryGroup[], ctx: SendContext): Promise<void> {
    await this.#post(summaryPayload(groups, this.#look), ctx.signal);
  }

  async #post(payload: Record<string, unknown>, signal: AbortSignal): Promise<void> {
    const body = stringifyLossless(payload) + '\n';
    if (this.deps.debug) this.deps.logger.debug({ payload: body.trimEnd() }, 'Slack payload');
    await this.target.send({ headers: HEADERS, body, signal });
  }

  close(): Promise<void> {
    return this.target.close();
  }
}

export const slack: OutputType<typeof schema> = {
  type: 'slack',
  schema,
  secrets: ['webhookurl'],
  // One message at a time, in order, about one a second (Slack's documented webhook rate); a backlog
  // beyond 50 messages (about a minute behind) is summarised rather than posted one by one.
  defaults: { maxBatch: 1, maxBatchLimit: 1, concurrency: 1, rateLimit: 1, summarizeAbove: 50 },
  falcosidekick: { prefix: 'slack', enabledBy: 'webhookurl' },
  create: (config, deps) =>
    new SlackOutput(config, new HttpTarget({ url: config.webhookurl, checkcert: config.checkcert, mutualtls: config.mutualtls, tls: deps.tls, connections: deps.concurrency }), deps),
};
