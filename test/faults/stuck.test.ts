/**
 * Hung outputs: a send that never ends is abandoned at delivery.timeout and reported, and a router
 * whose output hangs still stops within its grace period.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { z } from 'zod';
import { loadConfig } from '../../src/config/load.ts';
import { startRouter } from '../../src/app.ts';
import { createLogger } from '../../src/log.ts';
import type { OutputType } from '../../outputs/sdk/contract.ts';
import { tempDir } from '../helpers/router.ts';
import { freePort } from '../helpers/ports.ts';
import { spawnRouter } from '../helpers/process.ts';
import { waitFor, delay } from '../helpers/wait.ts';
import { falcoEvent, markerOf } from '../fixtures/events.ts';

test('a send that does not end is abandoned at delivery.timeout and the output shown stuck; no other send starts until it ends', async () => {
  const delivered: number[] = [];
  let calls = 0;
  let release: () => void = () => {};
  // An output whose first send ignores its signal, as a blocked write would, until released.
  const hangOnce: OutputType = {
    type: 'hang',
    schema: z.object({}),
    secrets: [],
    defaults: { maxBatch: 1, concurrency: 1 },
    create: () => ({
      send: (batch) => {
        if (calls++ === 0) return new Promise((_, reject) => (release = () => reject(new Error('EIO: the write finally failed'))));
        delivered.push(...batch.map((e) => markerOf(e.json)));
        return Promise.resolve();
      },
    }),
  };
  const file = join(tempDir(), 'config.yaml');
  writeFileSync(file, 'outputs: [{ name: h, type: hang, delivery: { timeout: 300ms, initialdelay: 10ms } }]\n');
  const cfg = loadConfig({ file, env: { LISTENADDRESS: '127.0.0.1', LISTENPORT: String(await freePort()), SHUTDOWN_GRACEPERIOD: '1s' }, types: [hangOnce] });
  const lines: string[] = [];
  const logger = createLogger('info', new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
  const r = await startRouter(cfg, [hangOnce], logger);
  const ready = async () => ((await (await fetch(`${r.url}/ready`)).json()) as { outputs: Array<{ stuckSends?: number; lastError?: { reason: string } }> }).outputs[0];
  try {
    assert.equal((await fetch(r.url, { method: 'POST', body: falcoEvent(1) })).status, 200);
    await waitFor(async () => (await ready()).stuckSends === 1, 10_000, 'the output shown stuck');
    assert.equal((await ready()).lastError?.reason, 'timeout');
    assert.ok(lines.some((l) => l.includes('output h is stuck')));
    await delay(500);
    assert.equal(calls, 1, 'no other send while the first has not ended');
    release();
    await waitFor(() => delivered.includes(1), 10_000, 'delivery once the stuck send ended');
    assert.equal((await ready()).stuckSends, undefined);
  } finally {
    await r.stop();
  }
});

test('a send that ends as soon as it is told to stop (an HTTP call) is not reported stuck', async () => {
  const { startHttpSink } = await import('../../outputs/sdk/testkit/http-sink.ts');
  const sink = await startHttpSink([{ status: 200, delayMs: 2000 }, { status: 200 }]);
  const file = join(tempDir(), 'config.yaml');
  writeFileSync(file, `outputs: [{ name: w, type: webhook, address: "${sink.url}", delivery: { timeout: 300ms, initialdelay: 10ms } }]\n`);
  const p = await spawnRouter(file);
  try {
    assert.equal((await fetch(p.url, { method: 'POST', body: falcoEvent(2) })).status, 200);
    await waitFor(() => sink.delivered().length >= 1, 10_000, 'delivery after the timeout');
    await delay(1500);
    assert.ok(p.logs().some((l) => l.reason === 'timeout'));
    assert.ok(!p.logs().some((l) => String(l.msg).includes('is stuck')), 'no stuck line for a cancelled HTTP call');
  } finally {
    await p.stop();
    await sink.close();
  }
});

test('a file output on a FIFO nobody reads fails each attempt at once (logged, in /ready), and SIGTERM still ends the process', async () => {
  const dir = tempDir();
  const fifo = join(dir, 'events.fifo');
  execFileSync('mkfifo', [fifo]);
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `outputs: [{ name: pipe, type: file, path: "${fifo}", delivery: { timeout: 2s, initialdelay: 100ms, maxdelay: 500ms } }]\n`);
  const p = await spawnRouter(config);
  try {
    assert.equal((await fetch(p.url, { method: 'POST', body: falcoEvent(1) })).status, 200);
    await waitFor(async () => {
      const ready = (await (await fetch(`${p.url}/ready`)).json()) as { outputs: Array<{ lastError?: { message: string } }> };
      return /ENXIO/.test(ready.outputs[0].lastError?.message ?? '');
    }, 10_000, 'the failure in /ready');
    assert.ok(p.logs().some((l) => String(l.msg).includes('delivery attempt failed') && String(l.msg).includes('ENXIO')));
  } finally {
    const started = Date.now();
    const code = await p.stop();
    assert.ok(Date.now() - started < 15_000, `stopped in ${Date.now() - started} ms`);
    assert.notEqual(code, null, 'exited by itself');
  }
});
