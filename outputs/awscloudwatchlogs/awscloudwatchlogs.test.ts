/**
 * CloudWatch Logs' own payload and protocol, with the real SDK client against a local CloudWatch
 * Logs that speaks AWS JSON 1.1 and enforces PutLogEvents' limits (./fake.ts), and a local STS.
 * Delivery behaviour every output shares (retries, dead letters, Retry-After, timeouts, secrets,
 * set-up retried) is checked by the conformance kit (test/conformance/outputs.test.ts with
 * ./conformance.ts); what is here is what CloudWatch does differently.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { readFileSync, existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { startTestRouter, tempDir, type TestRouter } from '../../test/helpers/router.ts';
import { waitFor, delay } from '../../test/helpers/wait.ts';
import { F6, falcoEvent } from '../../test/fixtures/events.ts';
import { isolateAwsEnv } from '../sdk/testkit/aws-fake.ts';
import { startLogsFake, checkBatch, batchBytes, type LogsFake, MAX_EVENTS, MAX_BYTES, DAY_MS } from './fake.ts';
import { startStsFake, type StsFake } from '../sdk/testkit/sts-fake.ts';
import { createAdapter, sendContext } from '../sdk/testkit/adapter.ts';
import { decodeEvent, checkEvent, serializeEvent, eventTimeMs } from '../../src/event/falco-event.ts';
import { StoredEvent } from '../../src/event/stored-event.ts';
import { awsCloudWatchLogs, split } from './index.ts';

isolateAwsEnv();

const GROUP = 'falco-alerts';
const STREAM = `falco-router-${hostname()}`;
const FAST_RETRY = 'delivery: { attempts: 5, initialdelay: 20ms, maxdelay: 100ms, timeout: 5s }';

let logs: LogsFake;
let sts: StsFake;
before(async () => {
  logs = await startLogsFake({ groups: [GROUP] });
  sts = await startStsFake();
});
after(async () => {
  await logs.close();
  await sts.close();
});

/** falcosidekick-style YAML: shared aws.* keys, the aws.cloudwatchlogs section. */
function fsYaml(opts: { group?: string; extra?: string; top?: string; delivery?: string } = {}): string {
  return `
${opts.top ?? ''}
aws:
  region: eu-west-1
  accesskeyid: AKIDSTATIC
  secretaccesskey: s3cr3t-key
  checkidentity: false
  cloudwatchlogs:
    loggroup: ${opts.group ?? GROUP}
    endpoint: ${logs.url}
    ${opts.delivery ?? FAST_RETRY}
${(opts.extra ?? '').replace(/^/gm, '    ')}
`;
}

/** Settings of an adapter created on its own (outside a router) that writes to the fake. */
function direct(group: string, stream: string): Record<string, unknown> {
  logs.createGroup(group);
  logs.createStream(group, stream);
  return { region: 'us-east-1', accesskeyid: 'AKID', secretaccesskey: 'x', checkidentity: false, endpoint: logs.url, loggroup: group, logstream: stream };
}

/** An accepted event as the queue stores it (enriched, with a uuid), at a given time. */
function stored(n: number, time = new Date().toISOString(), pad = 0): string {
  const ev = checkEvent(decodeEvent(falcoEvent(n)));
  if (pad > 0) ev.output_fields['big'] = 'x'.repeat(pad);
  return serializeEvent({ ...ev, uuid: randomUUID(), time });
}

/** An alert as Falco posts it, with the current time (CloudWatch would not store falcoEvent's 2025 time as is). */
const recent = (n: number) => falcoEvent(n).replace('2025-04-02T15:15:03.434319636Z', new Date().toISOString());

/** The output's own counter falco_router_output_events_total{stat}. */
const count = (r: TestRouter, stat: string, output = 'awscloudwatchlogs') => r.metric('falco_router_output_events_total', { output, stat });

function uuidOf(message: string): string {
  return /^\{"uuid":"([^"]+)"/.exec(message)?.[1] ?? '';
}

interface DeadLetters {
  count: number;
  items: Array<{ reason: string; attempts: number; event: { uuid: string; time: string; output_fields: Record<string, unknown> } }>;
}
const deadLetters = async (r: TestRouter, output = 'awscloudwatchlogs') => (await (await fetch(`${r.url}/api/v1/deadletters/${output}`)).json()) as DeadLetters;

test('creates its own stream <prefix>-<hostname> on first use, writes each event JSON as the webhook body, and a restarted router reuses the stream', async () => {
  const file = join(tempDir(), 'copy.ndjson');
  const r = await startTestRouter(fsYaml({ top: `outputs:\n  - { name: copy, type: file, path: ${file} }` }));
  try {
    const now = new Date(Date.now() - 3_600_000).toISOString();
    const f6 = F6.replace('2019-05-17T15:31:56.746609046Z', now.replace('Z', '123456Z'));
    assert.equal((await r.post(f6)).status, 200);
    assert.equal((await r.post(falcoEvent(1).replace('2025-04-02T15:15:03.434319636Z', now))).status, 200);
    await waitFor(() => logs.events(GROUP, STREAM).length === 2, 5000, 'two events in the stream');
    assert.deepEqual(logs.ops('CreateLogStream').map((c) => c.body), [{ logGroupName: GROUP, logStreamName: STREAM }]);

    const events = logs.events(GROUP, STREAM);
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').split('\n').filter(Boolean).length === 2, 5000, 'the file copy');
    const bodies = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    // The message is exactly what the webhook and file outputs write (minus the newline).
    assert.deepEqual(new Set(events.map((e) => e.message)), new Set(bodies));
    const first = events.find((e) => e.message.includes('"rule":"Write below binary dir"'))!;
    assert.match(first.message, /"output_fields":\{"evt\.time":1507591916746609046,"fd\.name":"\/bin\/hack"/, 'int64 evt.time exact');
    assert.equal(first.timestamp, Date.parse(now), 'timestamp is the event time in ms (truncated)');
    assert.equal(first.timestamp, eventTimeMs(JSON.parse(first.message).time));

    const put = logs.ops('PutLogEvents')[0];
    assert.equal(put.contentType, 'application/x-amz-json-1.1');
    assert.equal(put.accessKeyId, 'AKIDSTATIC', 'signed with the configured static key');
  } finally {
    await r.stop();
  }

  const creates = logs.ops('CreateLogStream', false).length;
  const r2 = await startTestRouter(fsYaml());
  try {
    assert.equal((await r2.post(recent(2))).status, 200);
    await waitFor(() => logs.events(GROUP, STREAM).length === 3, 5000, 'the third event in the same stream');
    const again = logs.ops('CreateLogStream', false).slice(creates);
    assert.deepEqual(again.map((c) => c.error), ['ResourceAlreadyExistsException'], 'one create attempt, answered "already exists"');
    assert.ok(r2.logs.some((l) => l.includes(`log stream ${STREAM} already exists, reusing it`)));
  } finally {
    await r2.stop();
  }
});

test('a configured logstream is used as is, without CreateLogStream', async () => {
  logs.createStream(GROUP, 'fixed');
  const creates = logs.ops('CreateLogStream', false).length;
  const r = await startTestRouter(fsYaml({ extra: 'logstream: fixed' }));
  try {
    assert.equal((await r.post(recent(3))).status, 200);
    await waitFor(() => logs.events(GROUP, 'fixed').length === 1, 5000, 'the event in the fixed stream');
    assert.equal(logs.ops('CreateLogStream', false).length, creates);
  } finally {
    await r.stop();
  }
});

test('delivers 12,000 events (5.6 MB, shuffled over three days) through the worker in PutLogEvents calls within every limit', async () => {
  const group = 'bulk';
  logs.createGroup(group);
  const r = await startTestRouter(fsYaml({ group }));
  try {
    const now = Date.now();
    const events: string[] = [];
    for (let i = 0; i < 12_000; i++) events.push(stored(i, new Date(now - Math.floor(Math.random() * 3 * DAY_MS)).toISOString()));
    const before = logs.calls.length;
    await r.queue.enqueue(new Map([['awscloudwatchlogs', events]]), Date.now());
    await waitFor(() => logs.events(group, STREAM).length >= 12_000, 10_000, '12,000 stored events');

    const puts = logs.calls.slice(before).filter((c) => c.op === 'PutLogEvents');
    assert.ok(puts.every((c) => c.error === undefined), `no call refused: ${puts.map((c) => c.error).filter(Boolean).join(', ')}`);
    let total = 0;
    for (const p of puts) {
      const batch = p.body.logEvents as Array<{ timestamp: number; message: string }>;
      assert.equal(checkBatch(batch), undefined);
      assert.ok(batch.length <= MAX_EVENTS && batchBytes(batch) <= MAX_BYTES);
      assert.ok(batch.every((e, i) => i === 0 || e.timestamp >= batch[i - 1].timestamp), 'sorted by timestamp');
      assert.ok(batch[batch.length - 1].timestamp - batch[0].timestamp < DAY_MS, 'spans less than 24 hours');
      total += batchBytes(batch);
    }
    assert.ok(total > 5 * MAX_BYTES, `more than 5 MiB in total (${total})`);
    assert.ok(puts.length >= 6 && puts.length < 40, `batched: ${puts.length} calls for 12,000 events`);
    const seen = logs.events(group, STREAM).map((e) => uuidOf(e.message));
    assert.equal(new Set(seen).size, 12_000, 'each event exactly once');
    assert.deepEqual(new Set(seen), new Set(events.map(uuidOf)));
    // The fake has stored the last call before the router has read its answer: wait for that too.
    await waitFor(async () => (await count(r, 'stored')) === 12_000, 10_000, 'the router counting 12,000 stored');
    assert.equal((await count(r, 'rejectedTooOld')) + (await count(r, 'rejectedTooNew')) + (await count(r, 'clamped')), 0);
  } finally {
    await r.stop();
  }
});

test('alerts posted one per request go out together: a few PutLogEvents calls, not one per alert', async () => {
  const group = 'together';
  logs.createGroup(group);
  // Falco posts one alert per request; each request is its own job when they trickle in.
  const r = await startTestRouter(fsYaml({ group, delivery: 'delivery: { attempts: 5, initialdelay: 20ms, maxdelay: 100ms, timeout: 5s, linger: 200ms }' }));
  try {
    const before = logs.calls.length;
    for (let i = 0; i < 100; i++) {
      await Promise.all(Array.from({ length: 3 }, (_, k) => r.post(falcoEvent(i * 3 + k)).then((res) => assert.equal(res.status, 200))));
    }
    await waitFor(() => logs.events(group, STREAM).length >= 300, 10_000, '300 stored events');
    const puts = logs.calls.slice(before).filter((c) => c.op === 'PutLogEvents');
    assert.ok(puts.length <= 30, `${puts.length} PutLogEvents calls for 300 alerts`);
    const seen = logs.events(group, STREAM).map((e) => JSON.parse(e.message).output_fields['test.n'] as number);
    assert.deepEqual([...new Set(seen)].sort((a, b) => a - b), Array.from({ length: 300 }, (_, i) => i), 'each alert once');
    assert.equal(seen.length, 300);
  } finally {
    await r.stop();
  }
});

test('cuts one send of 25,000 small events into calls of at most 10,000, and large events into calls under 1 MiB', async (t) => {
  const { out } = await createAdapter(t, awsCloudWatchLogs, direct('direct', 's'));
  const start = Date.now() - 60_000;
  const small = Array.from({ length: 25_000 }, (_, i) => new StoredEvent(`{"uuid":"u${i}","time":"${new Date(start + i).toISOString()}"}`));
  const before = logs.calls.length;
  const ctx = sendContext(30_000);
  await out.send(small, ctx);
  assert.deepEqual(logs.calls.slice(before).map((c) => [c.op, c.body.logEvents.length, c.error]), [
    ['PutLogEvents', 10_000, undefined],
    ['PutLogEvents', 10_000, undefined],
    ['PutLogEvents', 5_000, undefined],
  ]);
  assert.equal(ctx.reported.delivered.length, 25_000);

  // 30 events of ~100 KiB: at most 10 fit in 1,048,576 bytes.
  const big = Array.from({ length: 30 }, (_, i) => new StoredEvent(stored(i, new Date(start).toISOString(), 104_400)));
  const mark = logs.calls.length;
  await out.send(big, sendContext(30_000));
  const sizes = logs.calls.slice(mark).map((c) => c.body.logEvents.length);
  assert.deepEqual(sizes, [9, 9, 9, 3]);
  assert.ok(logs.calls.slice(mark).every((c) => c.error === undefined && batchBytes(c.body.logEvents) <= MAX_BYTES));

  // The splitter itself, on the 24-hour rule: a new call once the span would reach 24 h.
  const day = [0, 1000, DAY_MS - 1, DAY_MS, 2 * DAY_MS].map((timestamp) => ({ timestamp, message: 'm' }));
  assert.deepEqual(split(day).map((c) => c.map((e) => e.timestamp)), [[0, 1000, DAY_MS - 1], [DAY_MS], [2 * DAY_MS]]);
});

test('reads uuid and time of a stored event without a full parse, in agreement with the parser even when the output or a field looks like a time key', () => {
  // A 10,000-event batch reads both of every event; the shortcut must never pick a nested "time".
  const tricky = stored(5).replace('"output":"', '"output":"\\",\\"time\\":\\"1999-01-01T00:00:00Z ').replace('"fd.name":', '"a":{"time":"2000-01-01T00:00:00Z"},"fd.name":');
  for (const json of [stored(4), tricky, serializeEvent(checkEvent(decodeEvent(F6)))]) {
    const parsed = new StoredEvent(json).event;
    const quick = new StoredEvent(json);
    assert.deepEqual({ uuid: quick.uuid, time: quick.time }, { uuid: parsed.uuid, time: parsed.time });
  }
});

test('reports each PutLogEvents call as delivered when it succeeds: a send whose second call fails leaves only the later events to retry', async (t) => {
  const { out } = await createAdapter(t, awsCloudWatchLogs, direct('per-call', 's'));
  const start = Date.now() - 60_000;
  const batch = Array.from({ length: 20_500 }, (_, i) => new StoredEvent(`{"uuid":"u${i}","time":"${new Date(start + i).toISOString()}"}`));
  logs.fail(1, 1);
  const first = sendContext(30_000);
  await assert.rejects(out.send(batch, first), (err: Error & { reason?: string; retryable?: boolean }) => err.reason === 'serverError' && err.retryable === true);
  // Sorted by time, the first call is the first 10,000 events.
  assert.deepEqual(first.reported.delivered.map((e) => e.uuid), batch.slice(0, 10_000).map((e) => e.uuid));
  assert.deepEqual(first.reported.failed, []);
  assert.equal(logs.events('per-call', 's').length, 10_000);

  // What the pipeline does next: send again what was not reported delivered.
  const reported = new Set(first.reported.delivered);
  const again = sendContext(30_000, 2);
  await out.send(batch.filter((e) => !reported.has(e)), again);
  assert.equal(again.reported.delivered.length, 10_500);
  const seen = logs.events('per-call', 's').map((e) => uuidOf(e.message));
  assert.equal(seen.length, 20_500);
  assert.equal(new Set(seen).size, 20_500, 'no event written twice');
});

test('a set-up the pipeline gave up on leaves the working client in place, and a send after close() fails as retryable instead of crashing', async (t) => {
  const { out } = await createAdapter(t, awsCloudWatchLogs, direct('reentry', 's'));
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(out.setup!(ac.signal), /set-up was cancelled/);
  await out.send([new StoredEvent(stored(1))], sendContext());
  assert.equal(logs.events('reentry', 's').length, 1);

  await out.close!();
  await assert.rejects(out.send([new StoredEvent(stored(2))], sendContext()), (err: Error & { retryable?: boolean }) => /not set up, or already closed/.test(err.message) && err.retryable === true);
});

test('through the router, a send whose second call is throttled, or hangs past delivery.timeout, is retried without writing the first call again', async () => {
  const group = 'partial';
  logs.createGroup(group);
  const r = await startTestRouter(fsYaml({ group, delivery: 'delivery: { attempts: 5, initialdelay: 20ms, maxdelay: 100ms, timeout: 1s }' }));
  const seen = () => logs.events(group, STREAM).map((e) => uuidOf(e.message));
  // ~1.2 KB each: 3,000 make four calls of up to 1 MiB.
  const batch = () => {
    const start = Date.now() - 60_000;
    return Array.from({ length: 3000 }, (_, i) => stored(i, new Date(start + i).toISOString(), 600));
  };
  try {
    await r.queue.enqueue(new Map([['awscloudwatchlogs', [stored(0)]]]), Date.now());
    await waitFor(() => logs.events(group, STREAM).length === 1, 5000, 'stream ready');

    let mark = logs.calls.length;
    logs.throttle(1, 1);
    await r.queue.enqueue(new Map([['awscloudwatchlogs', batch()]]), Date.now());
    await waitFor(() => new Set(seen()).size === 3001, 10_000, 'all 3,000 events');
    let puts = logs.calls.slice(mark);
    assert.deepEqual(puts.slice(0, 2).map((c) => c.error ?? 'ok'), ['ok', 'ThrottlingException']);
    assert.ok(puts.length >= 4, `${puts.length} calls`);
    assert.equal(puts[2].body.logEvents[0].message, puts[1].body.logEvents[0].message, 'the retry starts with the throttled call');
    assert.equal(seen().length, 3001, 'no event written twice');

    mark = logs.calls.length;
    logs.hang(1, 1);
    await r.queue.enqueue(new Map([['awscloudwatchlogs', batch()]]), Date.now());
    await waitFor(() => new Set(seen()).size === 6001, 10_000, 'all 3,000 events of the second batch');
    puts = logs.calls.slice(mark);
    assert.deepEqual(puts.slice(0, 2).map((c) => c.error ?? 'ok'), ['ok', 'hung']);
    assert.equal(puts[2].body.logEvents[0].message, puts[1].body.logEvents[0].message, 'the retry starts with the call that hung');
    assert.ok(r.logs.some((l) => l.includes('"reason":"timeout"')));
    assert.equal(seen().length, 6001, 'no event written twice');
  } finally {
    await r.stop();
  }
});

test('shortens an event over 256 KiB with a marker and keeps it valid JSON, so metric filters still match', async () => {
  const group = 'huge';
  logs.createGroup(group);
  const r = await startTestRouter(fsYaml({ group }));
  try {
    const json = stored(1, new Date().toISOString(), 400 * 1024);
    await r.queue.enqueue(new Map([['awscloudwatchlogs', [json, stored(2)]]]), Date.now());
    await waitFor(() => logs.events(group, STREAM).length === 2, 5000, 'both events');
    const msg = logs.events(group, STREAM).find((e) => e.message.includes('"test.n":1'))!.message;
    assert.ok(Buffer.byteLength(msg) + 26 <= 262_144, `fits (${Buffer.byteLength(msg)} bytes)`);
    const parsed = JSON.parse(msg);
    assert.equal(parsed.priority, 'Warning');
    assert.equal(parsed.uuid, uuidOf(json));
    assert.match(parsed.output_fields.big, /x…\[truncated\]$/);
    assert.match(msg, /"evt\.time":1743606903434319637,/, 'numbers stay exact through the rewrite');
    // Counted once the call has returned, which is after the fake stored it.
    await waitFor(async () => (await count(r, 'truncated')) === 1, 5000, 'the truncation counted');
    assert.ok(r.logs.some((l) => /event larger than 256 KiB shortened/.test(l)));
  } finally {
    await r.stop();
  }
});

test('creates a deleted stream again and re-sends; with createloggroup also a deleted group; without it, dead-letters with a clear reason', async () => {
  const group = 'deleted';
  logs.createGroup(group);
  const r = await startTestRouter(fsYaml({ group, extra: 'createloggroup: true' }));
  try {
    assert.equal((await r.post(recent(1))).status, 200);
    await waitFor(() => logs.events(group, STREAM).length === 1, 5000, 'first event');
    logs.deleteStream(group, STREAM);
    assert.equal((await r.post(recent(2))).status, 200);
    await waitFor(() => logs.events(group, STREAM).length === 1 && logs.events(group, STREAM)[0].message.includes('"test.n":2'), 5000, 'event 2 in the new stream');
    logs.deleteGroup(group);
    assert.equal((await r.post(recent(3))).status, 200);
    await waitFor(() => logs.events(group, STREAM).some((e) => e.message.includes('"test.n":3')), 5000, 'event 3 in the new group');
    await waitFor(async () => (await count(r, 'recreated')) === 2, 5000, 'the router counting two re-creations');
    assert.ok(logs.ops('CreateLogGroup').some((c) => c.body.logGroupName === group));
    assert.ok(r.logs.some((l) => l.includes('The specified log stream does not exist. Creating it again.')));
  } finally {
    await r.stop();
  }

  const r2 = await startTestRouter(fsYaml({ group: 'never-created' }));
  try {
    assert.equal((await r2.post(recent(4))).status, 200);
    await waitFor(async () => (await deadLetters(r2)).count === 1, 5000, 'a dead letter');
    const [dl] = (await deadLetters(r2)).items;
    assert.match(dl.reason, /log group "never-created" does not exist; create it, or set createloggroup: true/);
    assert.equal(dl.attempts, 1, 'a missing group is not retried');
    assert.equal(logs.hasGroup('never-created'), false);
  } finally {
    await r2.stop();
  }
});

test('a stream CloudWatch does not see yet right after creating it is tried again, not dead-lettered', async () => {
  const group = 'lagging';
  logs.createGroup(group);
  const r = await startTestRouter(fsYaml({ group }));
  try {
    const mark = logs.calls.length;
    logs.lag(2);
    assert.equal((await r.post(recent(1))).status, 200);
    await waitFor(() => logs.events(group, STREAM).length === 1, 5000, 'the event once CloudWatch sees the stream');
    assert.deepEqual(logs.calls.slice(mark).map((c) => `${c.op} ${c.error ?? 'ok'}`), [
      'CreateLogStream ok',
      'PutLogEvents ResourceNotFoundException',
      'CreateLogStream ResourceAlreadyExistsException',
      'PutLogEvents ResourceNotFoundException',
      'PutLogEvents ok',
    ]);
    assert.ok(r.logs.some((l) => l.includes('delivery attempt failed') && l.includes('(right after creating it)') && l.includes('"final":false')));
    assert.equal((await deadLetters(r)).count, 0);
  } finally {
    await r.stop();
  }
});

test('writes events CloudWatch would reject for their age with the current time; with clamptimestamps off, dead-letters what CloudWatch does not store, by reason', async () => {
  const group = 'old';
  logs.createGroup(group);
  const old = F6; // 2019
  const ahead = falcoEvent(9).replace('2025-04-02T15:15:03.434319636Z', new Date(Date.now() + 3 * 3_600_000).toISOString());
  const r = await startTestRouter(fsYaml({ group }));
  try {
    const t0 = Date.now();
    assert.equal((await r.post(old)).status, 200);
    assert.equal((await r.post(ahead)).status, 200);
    await waitFor(() => logs.events(group, STREAM).length === 2, 5000, 'both stored');
    for (const e of logs.events(group, STREAM)) assert.ok(Math.abs(e.timestamp - t0) < 60_000, 'written at the current time');
    assert.ok(logs.events(group, STREAM).some((e) => e.message.includes('"time":"2019-05-17T15:31:56.746609046Z"')), 'the message keeps the event time');
    await waitFor(async () => (await count(r, 'clamped')) === 2, 5000, 'two clamped events counted');
    assert.ok(r.logs.some((l) => l.includes('written with the current time')));
  } finally {
    await r.stop();
  }

  const r2 = await startTestRouter(fsYaml({ group, extra: 'clamptimestamps: false' }));
  try {
    const before = logs.events(group, STREAM).length;
    const mark = logs.calls.length;
    const events = [stored(1, '2019-05-17T15:31:56Z'), stored(2), stored(3, new Date(Date.now() + 3 * 3_600_000).toISOString())];
    await r2.queue.enqueue(new Map([['awscloudwatchlogs', events]]), Date.now());
    await waitFor(async () => (await deadLetters(r2)).count === 2, 5000, 'two dead letters');
    const byMarker = new Map((await deadLetters(r2)).items.map((d) => [d.event.output_fields['test.n'], d]));
    assert.match(byMarker.get(1)!.reason, /CloudWatch Logs did not store the event: its timestamp is more than 14 days old/);
    assert.match(byMarker.get(3)!.reason, /CloudWatch Logs did not store the event: its timestamp is more than 2 hours ahead/);
    assert.deepEqual([byMarker.get(1)!.attempts, byMarker.get(3)!.attempts], [1, 1], 'not retried: CloudWatch would reject them again');
    assert.equal(byMarker.get(1)!.event.uuid, uuidOf(events[0]), 'the dead letter is the event as queued');
    assert.equal(logs.events(group, STREAM).length, before + 1, 'the event of now is stored');

    await waitFor(async () => (await count(r2, 'stored')) === 1, 5000, 'the stored event counted');
    assert.deepEqual([await count(r2, 'rejectedTooOld'), await count(r2, 'rejectedTooNew'), await count(r2, 'rejectedExpired')], [1, 1, 0]);
    assert.equal(await count(r2, 'calls'), 2, '2019 and now are more than 24 hours apart: two calls');
    const lines = r2.logs.filter((l) => l.includes('CloudWatch Logs rejected'));
    assert.equal(lines.length, 2, 'a warning for each call with rejections');
    assert.match(lines.join('\n'), /"level":40.*rejected 1 of 1 events \(too old: 1, past the group's retention: 0, too far ahead: 0\); they are dead-lettered/);
    assert.match(lines.join('\n'), /"level":40.*rejected 1 of 2 events \(too old: 0, past the group's retention: 0, too far ahead: 1\); they are dead-lettered/);
    await delay(100);
    assert.deepEqual(logs.calls.slice(mark).map((c) => `${c.op} ${c.error ?? 'ok'}`), ['CreateLogStream ResourceAlreadyExistsException', 'PutLogEvents ok', 'PutLogEvents ok'], 'not retried');
  } finally {
    await r2.stop();
  }
});

test("dead-letters an event older than the log group's retention, which clamping (for 14 days) leaves as is", async () => {
  const group = 'short-retention';
  logs.createGroup(group);
  logs.setRetention(group, 1);
  const r = await startTestRouter(fsYaml({ group }));
  try {
    const events = [stored(1, new Date(Date.now() - 3 * DAY_MS).toISOString()), stored(2, new Date(Date.now() - 2 * DAY_MS).toISOString()), stored(3)];
    await r.queue.enqueue(new Map([['awscloudwatchlogs', events]]), Date.now());
    await waitFor(async () => (await deadLetters(r)).count === 2, 5000, 'two dead letters');
    const items = (await deadLetters(r)).items;
    assert.deepEqual(items.map((d) => d.event.output_fields['test.n']).sort(), [1, 2]);
    for (const d of items) assert.match(d.reason, /did not store the event: its timestamp is older than the log group's retention/);
    assert.equal(logs.events(group, STREAM).length, 1);
    assert.deepEqual([await count(r, 'rejectedExpired'), await count(r, 'rejectedTooOld'), await count(r, 'clamped')], [2, 0, 0]);
  } finally {
    await r.stop();
  }
});

test('assumes the configured role (external id, falco-router-<uuid> session) and signs with its temporary credentials; env vars configure it', async () => {
  const group = 'assumed';
  logs.createGroup(group);
  const mark = sts.calls.length;
  const r = await startTestRouter('', {
    AWS_REGION: 'eu-west-1',
    AWS_ACCESSKEYID: 'AKIDBASE',
    AWS_SECRETACCESSKEY: 'base-secret',
    AWS_ROLEARN: 'arn:aws:iam::123456789012:role/falco-router',
    AWS_EXTERNALID: 'ext-42',
    AWS_CLOUDWATCHLOGS_LOGGROUP: group,
    AWS_CLOUDWATCHLOGS_ENDPOINT: logs.url,
    AWS_CLOUDWATCHLOGS_STSENDPOINT: sts.url,
  });
  try {
    // AssumeRole and the identity check run in the output's set-up, after the router has started.
    await waitFor(() => r.workers[0].state.status === 'running', 5000, 'the output set up');
    const calls = sts.calls.slice(mark);
    assert.deepEqual(calls.map((c) => c.action), ['AssumeRole', 'GetCallerIdentity'], 'one AssumeRole, shared by the identity check and the client');
    assert.equal(calls[0].accessKeyId, 'AKIDBASE');
    assert.equal(calls[0].params.RoleArn, 'arn:aws:iam::123456789012:role/falco-router');
    assert.equal(calls[0].params.ExternalId, 'ext-42');
    assert.match(calls[0].params.RoleSessionName, /^falco-router-[0-9a-f-]{36}$/);
    const issued = sts.issued.at(-1)!;
    assert.equal(calls[1].accessKeyId, issued.accessKeyId);
    assert.ok(r.logs.some((l) => l.includes('AWS identity of output awscloudwatchlogs: arn:aws:sts::123456789012:assumed-role/')));

    assert.equal((await r.post(recent(1))).status, 200);
    await waitFor(() => logs.events(group, STREAM).length === 1, 5000, 'the event');
    const put = logs.ops('PutLogEvents').at(-1)!;
    assert.equal(put.accessKeyId, issued.accessKeyId);
    assert.equal(put.sessionToken, issued.sessionToken);
    assert.equal(sts.calls.slice(mark).length, 2, 'credentials reused, not assumed again per call');
  } finally {
    await r.stop();
  }
});

test('assumed-role credentials are renewed before they expire', async () => {
  const group = 'renewed';
  logs.createGroup(group);
  // Credentials with 4 minutes left are inside the renewal window, so each use renews them.
  sts.setCredentialLifetime(4 * 60_000);
  const r = await startTestRouter(fsYaml({ group }).replace('checkidentity: false', `checkidentity: false\n  rolearn: arn:aws:iam::123456789012:role/short\n  stsendpoint: ${sts.url}`));
  try {
    const issued = sts.issued.length;
    const post = async (n: number) => {
      assert.equal((await r.post(recent(n))).status, 200);
      await waitFor(() => logs.events(group, STREAM).length === n, 5000, `event ${n}`);
    };
    await post(1);
    await post(2);
    const puts = logs.ops('PutLogEvents').slice(-2);
    const fresh = sts.issued.slice(issued).map((c) => c.accessKeyId);
    assert.ok(fresh.length >= 2, `renewed: ${fresh.length} AssumeRole calls`);
    assert.notEqual(puts[0].accessKeyId, puts[1].accessKeyId);
    assert.ok(puts.every((p) => fresh.includes(p.accessKeyId)));
  } finally {
    sts.setCredentialLifetime(3_600_000);
    await r.stop();
  }
});

test('while the identity check, the role or the region fails, the output keeps its alerts and /ready names the setting; once STS answers, they are delivered', async () => {
  const group = 'setup';
  logs.createGroup(group);
  const file = join(tempDir(), 'still-working.ndjson');
  sts.refuse('InvalidClientTokenId', 'The security token included in the request is invalid.');
  const putsBefore = logs.ops('PutLogEvents', false).length;
  const fast = 'delivery: { initialdelay: 20ms, maxdelay: 100ms }';
  let r: TestRouter | undefined;
  try {
    r = await startTestRouter(
      `
outputs:
  - { name: archive, type: file, path: ${file} }
  - name: cwl
    type: awscloudwatchlogs
    region: eu-west-1
    accesskeyid: AKIDBAD
    secretaccesskey: bad-secret
    endpoint: ${logs.url}
    stsendpoint: ${sts.url}
    loggroup: ${group}
    ${fast}
  - name: cwl-noregion
    type: awscloudwatchlogs
    checkidentity: false
    loggroup: ${group}
    endpoint: ${logs.url}
    ${fast}
  - name: cwl-role
    type: awscloudwatchlogs
    region: eu-west-1
    accesskeyid: AKIDBAD
    secretaccesskey: bad-secret
    rolearn: arn:aws:iam::123456789012:role/elsewhere
    endpoint: ${logs.url}
    stsendpoint: ${sts.url}
    loggroup: ${group}
    ${fast}
`,
    );
    assert.equal((await r.post(F6)).status, 200, 'accepted: 200 means stored');
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('Write below binary dir'), 5000, 'the file output still delivers');

    type Ready = { outputs: Array<{ name: string; status: string; backlog: number; setupError?: { attempts: number; message: string } }> };
    const ready = async () => new Map(((await (await fetch(`${r!.url}/ready`)).json()) as Ready).outputs.map((o) => [o.name, o]));
    const failing = ['cwl', 'cwl-noregion', 'cwl-role'];
    await waitFor(async () => {
      const now = await ready();
      return failing.every((n) => (now.get(n)?.setupError?.attempts ?? 0) >= 2);
    }, 10_000, 'each set-up tried again');
    const now = await ready();
    for (const n of failing) {
      assert.equal(now.get(n)!.status, 'setting-up', n);
      assert.equal(now.get(n)!.backlog, 1, `${n} keeps the alert`);
    }
    assert.match(now.get('cwl')!.setupError!.message, /^aws\.checkidentity: identity check failed: InvalidClientTokenId: The security token included in the request is invalid\./);
    assert.match(now.get('cwl-noregion')!.setupError!.message, /^aws\.region: no AWS region for output "cwl-noregion"/);
    assert.match(now.get('cwl-role')!.setupError!.message, /^aws\.rolearn: InvalidClientTokenId: AssumeRole arn:aws:iam::123456789012:role\/elsewhere failed: The security token/);
    assert.equal(now.get('archive')!.status, 'running');
    assert.ok(r.logs.some((l) => /"level":50.*output cwl cannot start: aws\.checkidentity: identity check failed/.test(l)));
    assert.equal(logs.ops('PutLogEvents', false).length, putsBefore, 'nothing sent before set-up passes');

    sts.accept();
    await waitFor(() => logs.events(group, STREAM).length === 2, 10_000, 'the alert of cwl and of cwl-role');
    assert.ok(logs.events(group, STREAM).every((e) => e.message.includes('"rule":"Write below binary dir"')));
    const after = await ready();
    assert.deepEqual([after.get('cwl')!.status, after.get('cwl-role')!.status, after.get('cwl-noregion')!.status], ['running', 'running', 'setting-up']);
  } finally {
    sts.accept();
    await r?.stop();
  }
});
