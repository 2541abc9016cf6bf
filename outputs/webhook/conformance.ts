import { randomUUID } from 'node:crypto';
import { startHttpSink, type Reply } from '../sdk/testkit/http-sink.ts';
import type { Behaviour, Conformance } from '../sdk/testkit/conformance.ts';
import { markerOf } from '../../test/fixtures/events.ts';
import { clientCertificateFiles } from '../sdk/testkit/tls-files.ts';

const REPLIES: Record<Exclude<Behaviour, 'refuseMarker1'>, Reply> = {
  fail: { status: 503, body: 'upstream unavailable' },
  refuse: { status: 400, body: 'bad request', echo: true },
  throttle: { status: 429, headers: { 'retry-after': '1' } },
  hang: { status: 200, delayMs: 60_000 },
};

export const conformance: Conformance = {
  supports: ['fail', 'refuse', 'throttle', 'hang'],
  retryAfter: true,
  unsupportedBecause: 'one alert per request, so there is no partial success',
  async start() {
    const token = `tok-${randomUUID()}`;
    const header = `hdr-${randomUUID()}`;
    const sink = await startHttpSink([{ status: 200 }], { path: `/falco?token=${token}` });
    const tls = clientCertificateFiles();
    return {
      settings: { address: sink.url, customheaders: { Authorization: `Bearer ${header}` }, mutualtls: true },
      global: { mutualtlsclient: tls.files },
      setup: { break: tls.break, fix: tls.fix },
      secrets: [token, header],
      delivered: () => sink.delivered().map(markerOf),
      calls: () => sink.requests.length,
      next: (b, times = 1) => sink.script([...Array<Reply>(times).fill(REPLIES[b as keyof typeof REPLIES]), { status: 200 }]),
      close: () => sink.close(),
    };
  },
};
