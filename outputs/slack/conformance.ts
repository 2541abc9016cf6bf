import type { Behaviour, Conformance } from '../sdk/testkit/conformance.ts';
import { startFakeSlack, slackReplies, markerOfMessage, type SlackReply } from './fake.ts';

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
  unsupportedBecause:
    'one message per alert, so there is no partial success within a call. Its set-up can only fail on the client certificate files of mutualtls: true, ' +
    'which are global settings (mutualtlsfilespath, mutualtlsclient.*) that a fixture cannot set',
  async start() {
    const fake = await startFakeSlack();
    return {
      settings: { webhookurl: fake.url },
      // The path is the credential; the token is its last segment, the part Slack keeps secret.
      secrets: [fake.token, fake.path],
      delivered: () => fake.messages().map(markerOfMessage),
      calls: () => fake.requests.length,
      next: (b, times = 1) => fake.script([...Array<SlackReply>(times).fill(REPLIES[b as keyof typeof REPLIES]), slackReplies.ok()]),
      close: () => fake.close(),
    };
  },
};
