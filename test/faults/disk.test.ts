/**
 * A full disk under the file output (a tmpfs of 512 KiB): writes fail with ENOSPC or stop short,
 * the output retries, /ready shows why, and once there is room every acknowledged alert is in the
 * file, each on a line of its own, none cut. Needs root to mount a tmpfs; skipped (with the reason)
 * where that is not allowed.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { startTestRouter } from '../helpers/router.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { tempDir } from '../helpers/router.ts';
import { waitFor } from '../helpers/wait.ts';
import { falcoEvent, markerOf } from '../fixtures/events.ts';

function mountTmpfs(dir: string, size: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here (${String((err as { stderr?: Buffer }).stderr ?? err).trim()}); run the tests as root to include this one`;
  }
}

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(() => redis.stop(true));

for (const driver of ['memory', 'redis'] as const) {
  describe(`${driver} driver`, () => {
    test('a full disk loses no acknowledged alert and leaves no broken line; the failure shows in /ready', async (t) => {
      const dir = tempDir();
      const skip = mountTmpfs(dir, '512k');
      if (skip) return t.skip(skip);
      t.after(() => execFileSync('umount', ['-l', dir]));
      const path = join(dir, 'events.ndjson');
      const queue = driver === 'memory' ? 'queue: { driver: memory }' : `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "disk-${randomUUID().slice(0, 8)}" } }`;
      const r = await startTestRouter(`${queue}
outputs:
  - { name: archive, type: file, path: "${path}", maxsize: 0, delivery: { attempts: 10000, initialdelay: 20ms, maxdelay: 200ms } }
`);
      try {
        const n = 3000;
        for (let i = 0; i < n; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
        await waitFor(async () => {
          const ready = (await (await fetch(`${r.url}/ready`)).json()) as { outputs: Array<{ lastError?: { message: string } }> };
          return /ENOSPC/.test(ready.outputs[0].lastError?.message ?? '');
        }, 15_000, 'ENOSPC in /ready');
        execFileSync('mount', ['-o', 'remount,size=8m', dir]);
        await waitFor(() => existsSync(path) && readFileSync(path, 'utf8').split('\n').filter(Boolean).length >= n, 30_000, `${n} lines`);
        const text = readFileSync(path, 'utf8');
        assert.ok(text.endsWith('\n'));
        const lines = text.split('\n').filter(Boolean);
        for (const l of lines) JSON.parse(l);
        const markers = lines.map(markerOf);
        assert.equal(new Set(markers).size, n, 'every acknowledged alert is there');
        assert.equal(markers.length, n, 'none twice');
      } finally {
        await r.stop();
      }
    });
  });
}
