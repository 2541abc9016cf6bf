import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTestRouter, tempDir, type TestRouter } from '../helpers/router.ts';
import { waitFor } from '../helpers/wait.ts';
import { F6, falcoEvent } from '../fixtures/events.ts';

let router: TestRouter;
let file: string;

const lines = () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

before(async () => {
  file = join(tempDir(), 'events', 'out.ndjson');
  router = await startTestRouter(`
bodylimit: 64KiB
outputs:
  - name: all
    type: file
    path: ${file}
`);
});
after(() => router.stop());

async function req(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}) {
  const res = await fetch(`${router.url}${path}`, { method, body: body as BodyInit | undefined, headers });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

test('accepts a Falco alert with 200 and an empty body, and the file output receives it', async () => {
  const before = lines().length;
  const res = await req('POST', '/', F6, { 'content-type': 'application/json' });
  assert.equal(res.status, 200);
  assert.equal(res.body, '');
  await waitFor(() => lines().length === before + 1, 5000, 'the event in the file');
  assert.match(lines().at(-1)!, /"evt\.time":1507591916746609046,/);
});

test('accepts any content type (curl -d sends a form type) and a gzip body', async () => {
  assert.equal((await req('POST', '/', F6, { 'content-type': 'application/x-www-form-urlencoded' })).status, 200);
  assert.equal((await req('POST', '/', gzipSync(F6), { 'content-type': 'application/json', 'content-encoding': 'gzip' })).status, 200);
});

test('ingests a POST to an unknown path, as falcosidekick does', async () => {
  assert.equal((await req('POST', '/some/other/path', F6)).status, 200);
});

test('answers /ping, /healthz and /test like falcosidekick', async () => {
  assert.deepEqual(await req('GET', '/ping'), { status: 200, body: 'pong\n', type: 'text/plain; charset=utf-8' });
  const health = await req('GET', '/healthz');
  assert.equal(health.body, '{"status": "ok"}');
  assert.equal(health.type, 'application/json');
  const n = lines().length;
  assert.equal((await req('POST', '/test')).status, 200);
  await waitFor(() => lines().length > n, 5000, 'the test event');
  assert.match(lines().at(-1)!, /"rule":"Test rule".*"source":"internal"/);
  assert.deepEqual(await req('GET', '/test'), { status: 400, body: 'Please send with post http method\n', type: 'text/plain; charset=utf-8' });
});

test('refuses other methods on / with falcosidekick’s message', async () => {
  for (const m of ['GET', 'PUT', 'DELETE']) {
    const res = await req(m, '/', m === 'GET' ? undefined : F6);
    assert.equal(res.status, 400, m);
    assert.equal(res.body, 'Please send with post http method\n');
  }
});

test('every bad body gets a 400 that starts with falcosidekick’s message and says what is wrong, and nothing is stored', async () => {
  const n = lines().length;
  const cases: Array<[string | Buffer, RegExp, Record<string, string>?]> = [
    ['', /^Please send a valid request body: the body is empty\n$/],
    ['{not json', /^Please send a valid request body: the body is not valid JSON/],
    [F6.replace('"priority":"Error"', '"priority":"warn"'), /^Please send a valid request body: "priority": "warn" is not a Falco priority\n$/],
    [F6.replace('"rule":"Write below binary dir"', '"rule":""'), /"rule" is missing or empty/],
    [F6.replace('"2019-05-17T15:31:56.746609046Z"', '"yesterday"'), /"time": "yesterday" is not an RFC 3339 time/],
    [F6.replace(/"output_fields": \{.*\}\}$/, '"output_fields": "x"}'), /"output_fields" must be an object, not the string "x"/],
    ['16:31:56.746609046: Error File below a known binary directory opened for writing (user=root)', /plain-text Falco alert.*json_output: true/, { 'content-type': 'text/plain' }],
    [Buffer.from('not gzip'), /the gzip body cannot be decoded/, { 'content-encoding': 'gzip' }],
  ];
  for (const [body, message, headers] of cases) {
    const res = await req('POST', '/', body, headers);
    assert.equal(res.status, 400, String(body).slice(0, 60));
    assert.match(res.body, message);
    assert.equal(res.type, 'text/plain; charset=utf-8');
  }
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(lines().length, n, 'a rejected request stored nothing');
});

test('answers 413 for a body over the limit, compressed or not', async () => {
  const big = F6.replace('"fd.name":"/bin/hack"', `"fd.name":"${'x'.repeat(70 * 1024)}"`);
  const plain = await req('POST', '/', big);
  assert.equal(plain.status, 413);
  assert.match(plain.body, /limit is 65536 bytes \(bodylimit\)/);
  const zipped = await req('POST', '/', gzipSync(big), { 'content-encoding': 'gzip' });
  assert.equal(zipped.status, 413);
});

test('survives a burst of concurrent requests and stores each one once', async () => {
  const n = lines().length;
  const statuses = await Promise.all(Array.from({ length: 300 }, (_, i) => req('POST', '/', falcoEvent(i)).then((r) => r.status)));
  assert.ok(statuses.every((s) => s === 200));
  await waitFor(() => lines().length === n + 300, 10_000, '300 events in the file');
  const markers = new Set(lines().slice(n).map((l) => /"test\.n":(\d+)/.exec(l)![1]));
  assert.equal(markers.size, 300);
});

test('counts accepted and rejected requests in falcosidekick’s metrics', async () => {
  const res = await req('GET', '/metrics');
  assert.match(res.body, /falcosecurity_falcosidekick_inputs_total\{source="requests",status="accepted"\} \d+/);
  assert.match(res.body, /falcosecurity_falcosidekick_inputs_total\{source="requests",status="rejected"\} \d+/);
  assert.match(res.body, /falco_router_events_rejected_total\{reason="invalidEvent"\} \d+/);
});
