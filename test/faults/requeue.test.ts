/** Re-queueing dead letters is atomic per dead letter: calls at once never deliver one twice. */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestRouter } from '../helpers/router.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { startHttpSink } from '../../outputs/sdk/testkit/http-sink.ts';
import { waitFor, delay } from '../helpers/wait.ts';
import { falcoEvent, markerOf } from '../fixtures/events.ts';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(() => redis.stop(true));

for (const driver of ['memory', 'redis'] as const) {
  describe(`${driver} driver`, () => {
    test('two re-queue calls at once (and one from a second router) deliver each dead letter once', async () => {
      const sink = await startHttpSink([{ status: 400 }]);
      const queue = driver === 'memory' ? 'queue: { driver: memory }' : `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "rq-${randomUUID().slice(0, 8)}" } }`;
      const yaml = `${queue}\noutputs:\n  - { name: hook, type: webhook, address: "${sink.url}", delivery: { concurrency: 8 } }\n`;
      const a = await startTestRouter(yaml);
      const b = driver === 'redis' ? await startTestRouter(yaml) : a;
      try {
        const n = 120;
        for (let i = 0; i < n; i++) assert.equal((await a.post(falcoEvent(i))).status, 200);
        await waitFor(async () => (await a.queue.deadLetterCount('hook')) === n, 15_000, `${n} dead letters`);
        sink.script([{ status: 200 }]);
        const requeue = (url: string) => fetch(`${url}/api/v1/deadletters/hook/requeue`, { method: 'POST' }).then((r) => r.json() as Promise<{ requeued: number }>);
        const answers = await Promise.all([requeue(a.url), requeue(a.url), requeue(b.url)]);
        assert.equal(answers.reduce((sum, x) => sum + x.requeued, 0), n, `answers ${JSON.stringify(answers)}`);
        await waitFor(() => sink.delivered().length >= n, 15_000, `${n} deliveries`);
        await delay(300);
        const got = sink.delivered().map(markerOf);
        assert.equal(got.length, n, 'no duplicates');
        assert.equal(new Set(got).size, n);
        assert.equal(await a.queue.deadLetterCount('hook'), 0);
      } finally {
        if (b !== a) await b.stop();
        await a.stop();
        await sink.close();
      }
    });
  });
}
