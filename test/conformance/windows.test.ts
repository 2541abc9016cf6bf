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
import { RedisWindows } from '../../src/queue/redis-windows.ts';
import { MemoryWindows, type JobMemo } from '../../src/queue/memory-windows.ts';
import { createLogger } from '../../src/log.ts';
import type { QueueDriver, WindowCount, WindowHit } from '../../src/queue/types.ts';
import { HandBack } from '../../src/errors.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { delay } from '../helpers/wait.ts';
import { MAX_OPEN_WINDOWS, OVERFLOW_HASH, OVERFLOW_KEY } from '../../src/pipeline/summary.ts';

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

    /** A driver of its own (a prefix of its own on Redis), and a way to let time pass on its clock. */
    async function open(): Promise<{ queue: QueueDriver; prefix: string; pass(ms: number): Promise<void> }> {
      const prefix = `win-${randomUUID().slice(0, 8)}`;
      const clock = new FakeClock();
      const queue =
        driver === 'memory'
          ? new MemoryQueue(1000, clock)
          : await RedisQueue.connect({ url: redis.url, prefix, lockDuration: 30_000, stalledInterval: 15_000, depthCheckInterval: 30_000, logger: createLogger('silent') });
      queues.push(queue);
      return { queue, prefix, pass: async (ms) => void (driver === 'memory' ? await clock.advance(ms) : await delay(ms)) };
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

    test(`beyond ${MAX_OPEN_WINDOWS} keys with a window open, alerts of new keys share one overflow window, held back and summarised like any other`, async () => {
      const { queue } = await open();
      for (let i = 0; i < MAX_OPEN_WINDOWS; i += 1000) {
        const counts = await queue.countInWindows('out', Array.from({ length: 1000 }, (_, k) => hit(`k${i + k}`)));
        assert.ok(counts.every((c) => c.n === 1 && c.hash !== OVERFLOW_HASH));
      }
      const [a, b, c, known] = await queue.countInWindows('out', [hit('new-a'), hit('new-b'), hit('new-c'), hit('k0')]);
      assert.deepEqual([a, b, c].map((x) => [x.hash, x.n]), [[OVERFLOW_HASH, 1], [OVERFLOW_HASH, 2], [OVERFLOW_HASH, 3]]);
      assert.equal(c.start, a.start, 'one overflow window');
      assert.deepEqual([known.hash, known.n], ['k0', 2], 'a key with a window open keeps counting in it');
      assert.equal(b.needsClose, true);
      const taken = await queue.closeWindow('out', { kind: 'dedup', hash: OVERFLOW_HASH, start: a.start });
      assert.deepEqual([taken?.held, taken?.key], [2, OVERFLOW_KEY]);
    });

    test('windows that ended no longer count toward the bound, though a longer one opened before them is still open (a reload shortened the window)', async () => {
      const { queue, pass } = await open();
      // Long enough on Redis's real clock for the bound to be filled before any of them ends.
      const short = 2000;
      await queue.countInWindows('out', [hit('long', 3_600_000)]);
      for (let i = 1; i < MAX_OPEN_WINDOWS; i += 1000) await queue.countInWindows('out', Array.from({ length: Math.min(1000, MAX_OPEN_WINDOWS - i) }, (_, k) => hit(`short${i + k}`, short)));
      const [full] = await queue.countInWindows('out', [hit('early', short)]);
      assert.equal(full.hash, OVERFLOW_HASH, 'the bound is reached');
      await pass(short + 100);
      const [fresh, long] = await queue.countInWindows('out', [hit('new', short), hit('long', 3_600_000)]);
      assert.deepEqual([fresh.hash, fresh.n], ['new', 1], 'a new key gets a window of its own: the short windows are over');
      assert.deepEqual([long.hash, long.n], ['long', 2], 'the long window is still open');
    });

    test('alerts counted again in their window because their job runs again (handed back) say so, and count once', async () => {
      const { queue } = await open();
      const [a, b] = [hit('k'), hit('k')];
      await queue.enqueue(new Map([['out', ['{}']]]), Date.now());
      const runs: WindowCount[][] = [];
      let ranAgain!: () => void;
      const again = new Promise<void>((resolve) => (ranAgain = resolve));
      const consumer = queue.consume('out', 1, async (job) => {
        runs.push(await queue.countInWindows('out', [a, b], job));
        if (runs.length === 1) throw new HandBack();
        ranAgain();
      });
      await again;
      await consumer.stop(1000);
      assert.deepEqual(
        runs.map((r) => r.map((c) => [c.n, c.counted])),
        [
          [[1, true], [2, true]],
          [[1, false], [2, false]],
        ],
      );
      const [c] = await queue.countInWindows('out', [hit('k')]);
      assert.equal(c.n, 3, 'the next alert is the third');
    });

    test('an alert let through in its window is let through again when it comes back in another job (a dead letter put back)', async () => {
      const { queue } = await open();
      const a = hit('k');
      await queue.countInWindows('out', [a, hit('k')]);
      const [again] = await queue.countInWindows('out', [a]);
      assert.deepEqual([again.n, again.counted], [1, false]);
    });
  });
}

describe('memory driver: what windows keep in the process', () => {
  test('a window keeps the uuids it let through, not one per alert it held back; those are kept on their job, and go with it', () => {
    const windows = new MemoryWindows();
    const memo: JobMemo = new Map();
    const counts = windows.count('out', Array.from({ length: 100_000 }, () => hit('same')), 0, memo);
    assert.equal(counts.filter((c) => c.n > 1).length, 99_999);
    assert.equal(windows.uuidsKept(), 1, 'the one let through');
    assert.equal(memo.size, 99_999);
    assert.equal(windows.take('out', { kind: 'dedup', hash: 'same', start: 0 })?.held, 99_999);
  });
});

describe('redis driver: what windows leave in Redis', () => {
  test('a window that held nothing back is gone a minute after its end; what one held back is kept a day for its close job', async () => {
    const prefix = `ttl-${randomUUID().slice(0, 8)}`;
    const queue = await RedisQueue.connect({ url: redis.url, prefix, lockDuration: 30_000, stalledInterval: 15_000, depthCheckInterval: 30_000, logger: createLogger('silent') });
    try {
      // 1,000 alerts whose keys all differ (a varying command line), in 1 s windows: none held back.
      await queue.countInWindows('out', Array.from({ length: 1000 }, (_, i) => hit(`cmd-${i}`, 1000)));
      const [, held] = await queue.countInWindows('out', [hit('same', 1000), hit('same', 1000)]);
      const keys = await queue.commands.keys(`${prefix}:win:*`);
      const ttl = new Map(await Promise.all(keys.map(async (k) => [k, await queue.commands.pttl(k)] as const)));
      const aggregate = `${prefix}:win:out:dedup:same:${held.start}`;
      const longLived = [...ttl].filter(([, ms]) => ms > 61_000 || ms < 0).map(([k]) => k);
      assert.deepEqual(longLived.filter((k) => !k.startsWith(aggregate)).sort(), [], 'nothing else outlives its window by more than a minute');
      assert.ok(ttl.get(aggregate)! > 86_000_000, 'the held-back count waits for its close job');
    } finally {
      await queue.close();
    }
  });

  test('what a window held back takes a handful of fields however many alerts it held; its alerts\' uuids go a minute after its end', async () => {
    const prefix = `size-${randomUUID().slice(0, 8)}`;
    const queue = await RedisQueue.connect({ url: redis.url, prefix, lockDuration: 30_000, stalledInterval: 15_000, depthCheckInterval: 30_000, logger: createLogger('silent') });
    try {
      // 2,000 alerts of one key in a minute's window: one sent, 1,999 held back.
      const counts = await queue.countInWindows('out', Array.from({ length: 2000 }, () => hit('same')));
      const ref = { kind: 'dedup' as const, hash: 'same', start: counts[0].start };
      const aggregate = `${prefix}:win:out:dedup:same:${ref.start}`;
      const summaryFields = ['end', 'first', 'firstMs', 'held', 'key', 'last', 'lastMs', 'p:Warning'];
      assert.deepEqual((await queue.commands.hkeys(aggregate)).sort(), summaryFields, 'no field per alert');
      const keys = await queue.commands.keys(`${prefix}:win:*`);
      const dayLong = [];
      for (const k of keys) if ((await queue.commands.pttl(k)) > 60_000 + 61_000) dayLong.push(k);
      assert.deepEqual(dayLong.sort(), [aggregate, `${aggregate}:h`, `${aggregate}:p`, `${aggregate}:r`], 'only the summary waits a day for its close job');
      assert.equal((await queue.closeWindow('out', ref))?.held, 1999);
      assert.deepEqual((await queue.commands.hkeys(`${aggregate}:taken`)).sort(), summaryFields);
    } finally {
      await queue.close();
    }
  });

  test('route-test sees the overflow window an alert of a new key would be counted in, once the bound is reached', async () => {
    const prefix = `peek-${randomUUID().slice(0, 8)}`;
    const queue = await RedisQueue.connect({ url: redis.url, prefix, lockDuration: 30_000, stalledInterval: 15_000, depthCheckInterval: 30_000, logger: createLogger('silent') });
    try {
      const windows = new RedisWindows(queue.commands, prefix);
      for (let i = 0; i < MAX_OPEN_WINDOWS; i += 1000) await queue.countInWindows('out', Array.from({ length: 1000 }, (_, k) => hit(`k${i + k}`)));
      assert.equal(await windows.peek('out', hit('new'), Date.now()), undefined, 'no overflow window open yet: the alert would be sent');
      await queue.countInWindows('out', [hit('other')]);
      assert.deepEqual(await windows.peek('out', hit('new'), Date.now()).then((p) => [p?.n, p?.overflow]), [1, true]);
      assert.deepEqual(await windows.peek('out', hit('k0'), Date.now()).then((p) => [p?.n, p?.overflow]), [1, false]);
    } finally {
      await queue.close();
    }
  });
});
