/** falcosidekick's webhook: the alert's JSON (plus a newline) POSTed (or PUT) to `address`, one request per alert. */
import { z } from 'zod';
import { HttpTarget, httpUrl, stringMap, bool, type OutputType, type Output, type StoredEvent, type SendContext } from '../sdk/index.ts';

const schema = z.object({
  address: httpUrl.describe('Enables the output: the URL alerts are sent to (it may carry a token).'),
  method: z
    .string()
    .default('POST')
    .transform((m) => m.toUpperCase())
    .pipe(z.enum(['POST', 'PUT'], { message: 'must be POST or PUT' }))
    .meta({ type: 'POST | PUT' })
    .describe('HTTP method (case-insensitive). Unlike falcosidekick, anything else is an error rather than POST.'),
  customheaders: stringMap.default({}).describe('Headers sent with every request (Authorization and the like).'),
  checkcert: bool.default(true).describe("Verify the server's TLS certificate."),
  mutualtls: bool.default(false).describe('Present the client certificate from mutualtlsfilespath / mutualtlsclient.* (checkcert is then always on).'),
});
type WebhookConfig = z.infer<typeof schema>;

class WebhookOutput implements Output {
  readonly #target: HttpTarget;
  readonly #headers: Record<string, string>;

  constructor(
    private readonly config: WebhookConfig,
    target: HttpTarget,
  ) {
    this.#target = target;
    this.#headers = { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' };
    for (const [k, v] of Object.entries(config.customheaders)) this.#headers[k.toLowerCase()] = v;
  }

  setup(): Promise<void> {
    return this.#target.setup();
  }

  async send(batch: readonly StoredEvent[], ctx: SendContext): Promise<void> {
    for (const item of batch) {
      await this.#target.send({ method: this.config.method, headers: this.#headers, body: item.json + '\n', signal: ctx.signal });
      ctx.delivered([item]);
    }
  }

  close(): Promise<void> {
    return this.#target.close();
  }
}

export const webhook: OutputType<typeof schema> = {
  type: 'webhook',
  schema,
  secrets: ['address', 'customheaders'],
  defaults: { maxBatch: 1, maxBatchLimit: 1, concurrency: 4 },
  falcosidekick: { prefix: 'webhook', enabledBy: 'address' },
  create: (config, deps) =>
    new WebhookOutput(config, new HttpTarget({ url: config.address, checkcert: config.checkcert, mutualtls: config.mutualtls, tls: deps.tls, connections: deps.concurrency })),
};
