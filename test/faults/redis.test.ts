/**
 * Redis faults under load: restarted, killed (append-only file on), and a backlog counter left
 * wrong. A client keeps every alert acknowledged with 200; the sink records every delivery.
 * Nothing acknowledged may be missing; duplicates (at-least-once) are counted; the backlog shown in
 * /ready is exact once things settle; a Redis outage does not flood the log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { startTestRouter, type TestRouter } from '../helpers/router.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { startHttpSink, type HttpSink } from '../../outputs/sdk/testkit/http-sink.ts';
import { waitFor, delay } from '../helpers/wait.ts';
import { falcoEvent, markerOf } from '../fixtures/events.ts';

const yaml = (redis: TestRedis, sink: HttpSink, prefix = `f-${randomUUID().slice(0, 8)}`) => `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "${prefix}", lockduration: 2s, stalledinterval: 1s, depthcheckinterval: 500ms } }
outputs:
  - { name: hook, type: webhook, address: "${sink.url}", delivery: { concurrency: 4, initialdelay: 50ms, maxdelay: 500ms } }
`;

/** Posts alerts one after the other until `stop()`; returns the markers answered 200 and how many got something else. */
function load(r: TestRouter) {
  const acked: number[] = [];
  let refused = 0;
  let running = true;
  const done = (async () => {
    for (let i = 0; running; i++) {
      const res = await r.post(falcoEvent(i)).catch(() => ({ status: 0 }));
      if (res.status === 200) acked.push(i);
      else refused++;
    }
  })();
  return {
    acked,
    get refused() {
      return refused;
    },
    stop: async () => {
      running = false;
      await done;
    },
  };
}

async function settled(r: TestRouter, sink: HttpSink, acked: number[]) {
  await waitFor(() => acked.every((n) => delivered(sink).has(n)), 40_000, `every acknowledged alert delivered (${acked.length})`);
  await waitFor(async () => {
    const ready = (await (await fetch(`${r.url}/ready`)).json()) as { outputs: Array<{ backlog: number | null }> };
    return ready.outputs[0].backlog === 0;
  }, 10_000, 'the backlog in /ready back to exactly 0');
  const all = sink.delivered().map(markerOf);
  return { duplicates: all.length - new Set(all).size };
}

const delivered = (sink: HttpSink) => new Set(sink.delivered().map(markerOf));

test('Redis restarted mid-load (AOF, fsync always): nothing acknowledged lost, backlog exact afterwards, the outage logged once per 10 s', { timeout: 90_000 }, async () => {
  const redis = await startRedis({ aof: 'always' });
  const sink = await startHttpSink([{ status: 200, delayMs: 2 }]);
  const r = await startTestRouter(yaml(redis, sink));
  try {
    const l = load(r);
    await delay(1000);
    await redis.stop();
    await delay(1500);
    await redis.start();
    await delay(1500);
    await l.stop();
    assert.ok(l.refused > 0, 'some alerts were refused (503) while Redis was away');
    const { duplicates } = await settled(r, sink, l.acked);
    assert.ok(duplicates <= 50, `duplicates ${duplicates}`);
    const outage = r.logs.filter((line) => line.includes('event may not be stored; answered 503'));
    assert.ok(outage.length <= 6, `${outage.length} lines for ${l.refused} refused alerts:\n${outage.join('\n')}`);
  } finally {
    await r.stop();
    await sink.close();
    await redis.stop(true);
  }
});

test('Redis killed (SIGKILL) mid-load with AOF fsync always: nothing acknowledged lost', { timeout: 90_000 }, async () => {
  const redis = await startRedis({ aof: 'always' });
  const sink = await startHttpSink([{ status: 200, delayMs: 2 }]);
  const r = await startTestRouter(yaml(redis, sink));
  try {
    const l = load(r);
    await delay(1000);
    await redis.stop(true);
    await delay(500);
    await redis.start();
    await delay(1000);
    await l.stop();
    await settled(r, sink, l.acked);
  } finally {
    await r.stop();
    await sink.close();
    await redis.stop(true);
  }
});

test('a backlog counter left wrong by a fault is corrected from the jobs themselves', async () => {
  const redis = await startRedis();
  const sink = await startHttpSink([{ status: 503 }]);
  const prefix = `drift-${randomUUID().slice(0, 8)}`;
  const r = await startTestRouter(yaml(redis, sink, prefix));
  const direct = new Redis(redis.url);
  try {
    for (let i = 0; i < 5; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
    // What a write that failed after being counted, or a killed process, leaves behind.
    await direct.incrby(`${prefix}:depth:hook`, 158);
    const backlog = async () => ((await (await fetch(`${r.url}/ready`)).json()) as { outputs: Array<{ backlog: number }> }).outputs[0].backlog;
    await waitFor(async () => (await backlog()) === 5, 5000, 'the backlog corrected to the 5 alerts waiting');
    assert.ok(r.logs.some((l) => l.includes('queue depth of output hook corrected from 163 to 5')));
    sink.script([{ status: 200 }]);
    await waitFor(async () => (await backlog()) === 0, 10_000, 'and 0 once delivered');
  } finally {
    direct.disconnect();
    await r.stop();
    await sink.close();
    await redis.stop(true);
  }
});
