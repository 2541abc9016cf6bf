import { z } from 'zod';
import type { Agent } from 'undici';
import type { OutputType, Output, StoredEvent, SendContext } from './types.ts';
import { createAgent, httpSend, assertOk, redactUrl } from '../src/http/client.ts';
import { httpUrl, stringMap, bool } from '../src/config/fields.ts';

const schema = z.object({
  address: httpUrl,
  method: z
    .string()
    .default('POST')
    .transform((m) => m.toUpperCase())
    .pipe(z.enum(['POST', 'PUT'], { message: 'must be POST or PUT' })),
  customheaders: stringMap.default({}),
  checkcert: bool.default(true),
  mutualtls: bool.default(false),
});
type WebhookConfig = z.infer<typeof schema>;

class WebhookOutput implements Output {
  readonly #agent: Agent;
  readonly #headers: Record<string, string>;

  constructor(
    readonly name: string,
    private readonly config: WebhookConfig,
    agent: Agent,
  ) {
    this.#agent = agent;
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': 'Falcosidekick',
    };
    for (const [k, v] of Object.entries(config.customheaders)) headers[k.toLowerCase()] = v;
    this.#headers = headers;
  }

  async send(batch: readonly StoredEvent[], ctx: SendContext): Promise<void> {
    for (const item of batch) {
      const res = await httpSend(this.#agent, this.config.address, {
        method: this.config.method,
        headers: this.#headers,
        body: item.json + '\n',
        signal: ctx.signal,
      });
      assertOk(res, `webhook ${redactUrl(this.config.address)}`);
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

export const webhook: OutputType<WebhookConfig> = {
  type: 'webhook',
  schema,
  secrets: ['address', 'customheaders'],
  defaults: { maxBatch: 1, concurrency: 4 },
  falcosidekick: {
    prefix: 'webhook',
    enabledBy: 'address',
    keys: { address: 'string', method: 'string', customheaders: 'map', checkcert: 'string', mutualtls: 'string' },
  },
  create(name, config, deps) {
    const agent = createAgent({ checkcert: config.checkcert, mutualtls: config.mutualtls, tls: deps.tls, connections: deps.concurrency });
    return new WebhookOutput(name, config, agent);
  },
};
