import { randomUUID } from 'node:crypto';
import type { Behaviour, Conformance } from '../sdk/testkit/conformance.ts';
import { startStsFake } from '../sdk/testkit/sts-fake.ts';
import { markerOf } from '../../test/fixtures/events.ts';
import { startLogsFake } from './fake.ts';
import { isolateAwsEnv } from '../sdk/testkit/aws-fake.ts';

const GROUP = 'conformance';

export const conformance: Conformance = {
  supports: ['fail', 'refuse', 'throttle', 'hang'],
  retryAfter: false,
  unsupportedBecause:
    'CloudWatch refuses events of an accepted call only by index ranges of the time-sorted call (rejectedLogEventsInfo: a prefix too old or past retention, a suffix too new), ' +
    'so it cannot refuse one alert between others; those ranges are tested in awscloudwatchlogs.test.ts',
  async start() {
    isolateAwsEnv();
    const logs = await startLogsFake({ groups: [GROUP] });
    const sts = await startStsFake();
    const accessKeyId = `AKIA${randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase()}`;
    const secretAccessKey = `secret-${randomUUID()}`;
    const behave: Record<Exclude<Behaviour, 'refuseMarker1'>, (n: number) => void> = {
      fail: (n) => logs.fail(n),
      refuse: (n) => logs.refuse(n),
      throttle: (n) => logs.throttle(n),
      hang: (n) => logs.hang(n),
    };
    return {
      // checkidentity is on (the default), so set-up asks the STS fake, which `setup` can break.
      settings: { region: 'eu-west-1', accesskeyid: accessKeyId, secretaccesskey: secretAccessKey, endpoint: logs.url, stsendpoint: sts.url, loggroup: GROUP },
      secrets: [accessKeyId, secretAccessKey],
      delivered: () => logs.streams(GROUP).flatMap((s) => logs.events(GROUP, s).map((e) => markerOf(e.message))),
      calls: () => logs.calls.length,
      next: (b, times = 1) => {
        if (b === 'refuseMarker1') throw new Error('CloudWatch Logs cannot refuse one alert of a call');
        behave[b](times);
      },
      setup: {
        break: () => sts.refuse('InvalidClientTokenId', 'The security token included in the request is invalid.', 403, true),
        fix: () => sts.accept(),
      },
      close: async () => {
        await logs.close();
        await sts.close();
      },
    };
  },
};
