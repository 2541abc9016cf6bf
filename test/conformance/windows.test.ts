/**
 * Dedup and throttle windows at the queue driver's interface, run against both drivers: what a
 * window counts and holds back, what its close job takes, and what stays behind. The memory driver
 * runs on a fake clock; Redis on its own clock, with windows long enough to stay open meanwhile.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { MemoryQueue } from '../../src/queue/memory.ts';
import { RedisQueue } from '../../src/queue/redis.ts';
import { createLogger } from '../../src/log.ts';
import type { QueueDriver, WindowHit } from '../../src/queue/types.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(() => redis.stop(true));

/** An alert of key `key` in a dedup window of windowMs (one alert per key goes out). */
const hit = (key: string, windowMs = 60_000): WindowHit => ({
  kind: 'dedup',
  hash: key,
  windowMs,
  limit: 1,
  uuid: randomUUID(),
  priority: 'Warning',
  hostname: 'node-1',
  pod: 'web-1',
  rule: 'Terminal shell in container',
  timeMs: 1743606903434,
  time: '2025-04-02T15:15:03.434Z',
  key: JSON.stringify([['rule', 'Terminal shell in container']]),
});

for (const driver of ['memory', 'redis'] as const) {
  describe(`${driver} driver`, () => {
    const queues: QueueDriver[] = [];
    after(() => Promise.all(queues.map((q) => q.close())));

    /** A driver of its own (a prefix of its own on Redis). */
    async function open(): Promise<{ queue: QueueDriver; prefix: string }> {
      const prefix = `win-${randomUUID().slice(0, 8)}`;
      const queue =
        driver === 'memory'
          ? new MemoryQueue(1000, new FakeClock())
          : await RedisQueue.connect({ url: redis.url, prefix, lockDuration: 30_000, stalledInterval: 15_000, depthCheckInterval: 30_000, logger: createLogger('silent') });
      queues.push(queue);
      return { queue, prefix };
    }

    test('after its close job took what a window held back, later alerts of its key open a new window with a close job of its own', async () => {
      const { queue } = await open();
      const [, second] = await queue.countInWindows('out', [hit('k'), hit('k')]);
      assert.equal(second.needsClose, true);
      const taken = await queue.closeWindow('out', { kind: 'dedup', hash: 'k', start: second.start });
      assert.equal(taken?.held, 1);
      const [third, fourth] = await queue.countInWindows('out', [hit('k'), hit('k')]);
      assert.notEqual(third.start, second.start, 'a new window');
      assert.equal(third.n, 1, 'the first of the new window goes out');
      assert.equal(fourth.needsClose, true, 'what the new window holds back gets its own close job');
      assert.equal((await queue.closeWindow('out', { kind: 'dedup', hash: 'k', start: fourth.start }))?.held, 1);
    });

    test('a close job that runs again (after a crash or a hand-back) takes the same held-back count until it is dropped', async () => {
      const { queue } = await open();
      const counts = await queue.countInWindows('out', [hit('k'), hit('k'), hit('k')]);
      const ref = { kind: 'dedup' as const, hash: 'k', start: counts[0].start };
      assert.equal((await queue.closeWindow('out', ref))?.held, 2);
      assert.equal((await queue.closeWindow('out', ref))?.held, 2, 'taken again: not lost by a crash before the summary went out');
      await queue.dropWindow('out', ref);
      assert.equal(await queue.closeWindow('out', ref), undefined);
    });

    test('an alert counted again in its window (its job ran before) says so', async () => {
      const { queue } = await open();
      const a = hit('k');
      const b = hit('k');
      const first = await queue.countInWindows('out', [a, b]);
      const again = await queue.countInWindows('out', [a, b]);
      assert.deepEqual(first.map((c) => [c.n, c.counted]), [[1, true], [2, true]]);
      assert.deepEqual(again.map((c) => [c.n, c.counted]), [[1, false], [2, false]]);
    });
  });
}
