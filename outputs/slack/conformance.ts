import type { Behaviour, Conformance } from '../sdk/testkit/conformance.ts';
import { startFakeSlack, slackReplies, markerOfMessage, type SlackReply } from './fake.ts';
import { clientCertificateFiles } from '../sdk/testkit/tls-files.ts';

const REPLIES: Record<Exclude<Behaviour, 'refuseMarker1'>, SlackReply> = {
  fail: slackReplies.serverError(500),
  // A webhook Slack no longer knows, answered by something that quotes the request (a proxy's
  // error page): the secret path comes back in the error text.
  refuse: { ...slackReplies.noService(), echo: true },
  throttle: slackReplies.rateLimited(1),
  hang: { ...slackReplies.ok(), delayMs: 60_000 },
};

export const conformance: Conformance = {
  supports: ['fail', 'refuse', 'throttle', 'hang'],
  retryAfter: true,
  unsupportedBecause: 'one message per alert, so there is no partial success within a call',
  async start() {
    const fake = await startFakeSlack();
    const tls = clientCertificateFiles();
    return {
      settings: { webhookurl: fake.url, mutualtls: true },
      global: { mutualtlsclient: tls.files },
      setup: { break: tls.break, fix: tls.fix },
      // The path is the credential; the token is its last segment, the part Slack keeps secret.
      secrets: [fake.token, fake.path],
      delivered: () => fake.messages().map(markerOfMessage),
      calls: () => fake.requests.length,
      next: (b, times = 1) => fake.script([...Array<SlackReply>(times).fill(REPLIES[b as keyof typeof REPLIES]), slackReplies.ok()]),
      close: () => fake.close(),
    };
  },
};
