/**
 * SNS on the conformance kit: the local SNS (Query protocol, PublishBatch rules) and a local STS
 * for the identity check that set-up runs. Alerts are published with their default attributes, so
 * the `test.n` output field arrives as a Number attribute; that is how deliveries are counted and
 * how `refuseMarker1` picks its entry.
 */
import { randomUUID } from 'node:crypto';
import type { Behaviour, Conformance } from '../sdk/testkit/conformance.ts';
import { startStsFake } from '../sdk/testkit/sts-fake.ts';
import { startSnsFake, type MessageRequest } from './fake.ts';
import { isolateAwsEnv } from '../sdk/testkit/aws-fake.ts';

isolateAwsEnv();

const marker = (m: MessageRequest) => Number(m.attributes['test.n']?.StringValue ?? -1);

export const conformance: Conformance = {
  supports: ['fail', 'refuse', 'throttle', 'hang', 'refuseMarker1'],
  // AWS throttling errors carry no Retry-After.
  retryAfter: false,
  async start() {
    const [sns, sts] = await Promise.all([startSnsFake(), startStsFake()]);
    const accessKeyId = `AKIA${randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase()}`;
    const secretAccessKey = `secret-${randomUUID()}`;
    const behave: Record<Behaviour, (times: number) => void> = {
      fail: (n) => sns.fail(n),
      // The echoed Authorization header carries the access key id, as a proxy's error page might.
      refuse: (n) => sns.refuse(n, 'InvalidParameter', 'Invalid parameter: request refused', 0, { echo: true }),
      throttle: (n) => sns.throttle(n),
      hang: (n) => sns.hang(n),
      refuseMarker1: (n) => sns.failEntries({ code: 'InvalidParameter', message: 'Invalid parameter: refused for the test', senderFault: true, n, match: (m) => marker(m) === 1 }),
    };
    return {
      settings: {
        topicarn: 'arn:aws:sns:eu-west-1:123456789012:conformance',
        region: 'eu-west-1',
        accesskeyid: accessKeyId,
        secretaccesskey: secretAccessKey,
        endpoint: sns.url,
        stsendpoint: sts.url,
        checkidentity: true,
      },
      secrets: [accessKeyId, secretAccessKey],
      delivered: () => sns.delivered().map(marker),
      calls: () => sns.calls.length,
      next: (b, times = 1) => behave[b](times),
      setup: {
        break: () => sts.refuse('InvalidClientTokenId', 'The security token included in the request is invalid.', 403, true),
        fix: () => sts.accept(),
      },
      close: async () => {
        await Promise.all([sns.close(), sts.close()]);
      },
    };
  },
};
