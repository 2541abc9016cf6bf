import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { file } from './index.ts';
import { StoredEvent } from '../../src/event/stored-event.ts';
import { OutputError } from '../../src/errors.ts';
import { testDeps, sendContext } from '../sdk/testkit/adapter.ts';
import { tempDir } from '../../test/helpers/router.ts';
import { falcoEvent } from '../../test/fixtures/events.ts';

const ctx = sendContext();
const ev = (n: number) => new StoredEvent(falcoEvent(n));

async function create(settings: Record<string, unknown>) {
  return file.create(file.schema.parse(settings), testDeps());
}

test('appends one JSON event per line and creates missing directories', async () => {
  const path = join(tempDir(), 'a', 'b', 'events.ndjson');
  const out = await create({ path });
  await out.send([ev(1), ev(2)], ctx);
  await out.send([ev(3)], ctx);
  await out.close!();
  const lines = readFileSync(path, 'utf8').split('\n');
  assert.equal(lines.pop(), '', 'the file ends with a newline');
  assert.deepEqual(lines.map((l) => JSON.parse(l)['output_fields']['test.n']), [1, 2, 3]);
});

test('rotates by size and keeps maxfiles old files', async () => {
  const dir = tempDir();
  const path = join(dir, 'events.ndjson');
  const size = Buffer.byteLength(falcoEvent(10)) + 1;
  const out = await create({ path, maxsize: size * 3, maxfiles: 2 });
  for (let i = 10; i < 22; i++) await out.send([ev(i)], ctx);
  await out.close!();
  assert.deepEqual(readdirSync(dir).sort(), ['events.ndjson', 'events.ndjson.1', 'events.ndjson.2']);
  const n = (f: string) => readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l)['output_fields']['test.n']);
  assert.deepEqual(n('events.ndjson'), [19, 20, 21]);
  assert.deepEqual(n('events.ndjson.1'), [16, 17, 18]);
  assert.deepEqual(n('events.ndjson.2'), [13, 14, 15]);
});

test('a path it cannot write is a permanent failure that names the path', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'plain-file'), '');
  const out = await create({ path: join(dir, 'plain-file', 'events.ndjson') });
  await assert.rejects(out.send([ev(1)], ctx), (err: unknown) => {
    assert.ok(err instanceof OutputError);
    assert.match(err.message, /cannot write .*plain-file\/events\.ndjson/);
    assert.equal(err.retryable, false);
    return true;
  });
});

test('alerts waiting out delivery.linger are not lost on a stop: written with the memory queue, handed back to Redis and written by the next router', async () => {
  const { startTestRouter } = await import('../../test/helpers/router.ts');
  const { startRedis } = await import('../../test/helpers/redis.ts');
  const { waitFor } = await import('../../test/helpers/wait.ts');
  const lines = (path: string) => {
    try {
      return readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)['output_fields']['test.n'] as number);
    } catch {
      return [];
    }
  };
  const yaml = (path: string, queue: string, linger: string) => `${queue}\noutputs:\n  - { name: f, type: file, path: "${path}", delivery: { linger: ${linger} } }\n`;

  // Memory: the stop sends what lingers at once instead of after 30 s.
  const memPath = join(tempDir(), 'mem.ndjson');
  const mem = await startTestRouter(yaml(memPath, 'queue: { driver: memory }', '30s'));
  for (let i = 0; i < 20; i++) assert.equal((await mem.post(falcoEvent(i))).status, 200);
  assert.deepEqual(lines(memPath), [], 'still lingering');
  await mem.stop();
  assert.deepEqual(lines(memPath).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));

  // Redis: the lingering jobs go back to the queue; the next router on the same queue writes them.
  const redis = await startRedis();
  try {
    const path = join(tempDir(), 'redis.ndjson');
    const queue = `queue: { driver: redis, redis: { url: "${redis.url}", prefix: linger } }`;
    const a = await startTestRouter(yaml(path, queue, '30s'));
    for (let i = 0; i < 20; i++) assert.equal((await a.post(falcoEvent(i))).status, 200);
    await a.stop();
    assert.deepEqual(lines(path), [], 'handed back, not written');
    const b = await startTestRouter(yaml(path, queue, '0s'));
    try {
      await waitFor(() => lines(path).length >= 20, 10_000, '20 lines');
      assert.deepEqual(lines(path).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i));
    } finally {
      await b.stop();
    }
  } finally {
    await redis.stop();
  }
});
