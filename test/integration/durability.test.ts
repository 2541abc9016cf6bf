/**
 * Real router processes on a real Redis: killed with SIGKILL mid-stream, and two replicas sharing
 * the work. A client keeps the markers of every event acknowledged with 200.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { startHttpSink } from '../../outputs/sdk/testkit/http-sink.ts';
import { launchRouter, spawnRouter } from '../helpers/process.ts';
import { tempDir } from '../helpers/router.ts';
import { waitFor } from '../helpers/wait.ts';
import { falcoEvent, markerOf } from '../fixtures/events.ts';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(() => redis.stop(true));

/** Posts events n0..n0+count-1, returns the markers acknowledged with 200 (stops at the first failure). */
async function postUntilFailure(url: string, n0: number, count: number): Promise<number[]> {
  const acked: number[] = [];
  for (let i = n0; i < n0 + count; i++) {
    try {
      const res = await fetch(url, { method: 'POST', body: falcoEvent(i) });
      if (res.status === 200) acked.push(i);
    } catch {
      break;
    }
  }
  return acked;
}

function config(sinkUrl: string, prefix: string): string {
  const file = join(tempDir(), 'config.yaml');
  writeFileSync(
    file,
    `queue:
  driver: redis
  redis: { url: "${redis.url}", prefix: "${prefix}", lockduration: 2s, stalledinterval: 1s }
outputs:
  - name: hook
    type: webhook
    address: "${sinkUrl}"
    delivery: { concurrency: 2, initialdelay: 50ms }
`,
  );
  return file;
}

test('a router killed with SIGKILL mid-stream delivers every acknowledged event after restart', { timeout: 90_000 }, async () => {
  // A slow webhook keeps a backlog in Redis and deliveries in flight when the process dies.
  const sink = await startHttpSink([{ status: 200, delayMs: 10 }]);
  const file = config(sink.url, `kill-${randomUUID().slice(0, 8)}`);
  const first = await spawnRouter(file);
  const acked: number[] = [];
  const posting = (async () => {
    for (let batch = 0; batch < 40; batch++) {
      const got = await postUntilFailure(first.url, batch * 25, 25);
      acked.push(...got);
      if (got.length < 25) return;
    }
  })();
  await waitFor(() => sink.delivered().length >= 100, 20_000, 'deliveries to start');
  first.child.kill('SIGKILL');
  await posting;
  await first.stop();
  assert.ok(acked.length > 100, `events were acknowledged before the kill (${acked.length})`);
  const deliveredBeforeRestart = new Set(sink.delivered().map(markerOf)).size;
  assert.ok(deliveredBeforeRestart < acked.length, 'the kill left acknowledged events undelivered');

  const second = await spawnRouter(file);
  try {
    await waitFor(
      () => {
        const got = new Set(sink.delivered().map(markerOf));
        return acked.every((m) => got.has(m));
      },
      30_000,
      'every acknowledged event after restart',
    );
  } finally {
    await sink.close();
  }
  assert.equal(await second.stop(), 0, 'SIGTERM stops the restarted router with exit code 0');
});

test('two router processes on one Redis deliver each event once per output', { timeout: 90_000 }, async () => {
  const sink = await startHttpSink();
  const file = config(sink.url, `pair-${randomUUID().slice(0, 8)}`);
  const [a, b] = await Promise.all([spawnRouter(file), spawnRouter(file)]);
  const n = 400;
  const acked = [...(await Promise.all([postUntilFailure(a.url, 0, n / 2), postUntilFailure(b.url, n / 2, n / 2)]))].flat();
  assert.equal(acked.length, n);
  await waitFor(() => sink.delivered().length >= n, 20_000, `${n} deliveries`);
  await new Promise((r) => setTimeout(r, 500));
  const markers = sink.delivered().map(markerOf);
  assert.equal(markers.length, n, 'no duplicate deliveries');
  assert.equal(new Set(markers).size, n);
  assert.deepEqual(await Promise.all([a.stop(), b.stop()]), [0, 0]);
  await sink.close();
});

test('a SIGHUP while the router is still starting (Redis not up yet) does not kill it; it reloads once started', { timeout: 60_000 }, async () => {
  const late = await startRedis();
  await late.stop();
  const dir = tempDir();
  const file = join(dir, 'config.yaml');
  writeFileSync(file, `queue: { driver: redis, redis: { url: "${late.url}", prefix: hup-${randomUUID().slice(0, 8)} } }\noutputs:\n  - { name: a, type: file, path: ${join(dir, 'a.ndjson')} }\n`);
  const p = await launchRouter(file);
  try {
    await waitFor(() => p.output().includes('"msg":"starting"'), 20_000, 'the router starting');
    p.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(p.child.exitCode, null, `still running after the SIGHUP: ${p.output()}`);
    assert.equal(p.child.signalCode, null);
    await late.start();
    await p.listening();
    await waitFor(() => p.output().includes('config reloaded (SIGHUP during startup)'), 10_000, 'the reload it was asked for');
    assert.equal((await fetch(p.url, { method: 'POST', body: falcoEvent(1) })).status, 200);
  } finally {
    await p.stop();
    await late.stop(true);
  }
});
