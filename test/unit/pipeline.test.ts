/**
 * The delivery pipeline's parts with a fake clock: the gatherer's flush policy, the pacer, one
 * attempt's outcome per event, and the worker's retries, dead letters, set-up and summaries over a
 * real memory queue. Time moves only when a test says so, so nothing here polls real time.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { Gatherer } from '../../src/pipeline/gatherer.ts';
import { Pacer } from '../../src/pipeline/pacer.ts';
import { attempt } from '../../src/pipeline/attempt.ts';
import { backoffDelay } from '../../src/pipeline/clock.ts';
import { Redactor } from '../../src/pipeline/redact.ts';
import { DeliveryWorker, type DeliveryObserver } from '../../src/pipeline/worker.ts';
import { MemoryQueue } from '../../src/queue/memory.ts';
import { GroupCommit } from '../../src/ingest/group-commit.ts';
import { HandBack, OutputError } from '../../src/errors.ts';
import { StoredEvent } from '../../src/event/stored-event.ts';
import { createLogger } from '../../src/log.ts';
import type { OutputInstance } from '../../src/config/load.ts';
import type { Output, SendContext } from '../../outputs/sdk/contract.ts';
import type { QueueDriver } from '../../src/queue/types.ts';
import { MAX_OPEN_WINDOWS, summaryLine, type SummaryGroup } from '../../src/pipeline/summary.ts';
import { FakeClock, settle } from '../helpers/fake-clock.ts';
import { falcoEvent, markerOf } from '../fixtures/events.ts';

/** An alert as ingest stores it: its uuid first. */
const stored = (n: number) => falcoEvent(n).replace('{', `{"uuid":"${randomUUID()}",`);
const ev = (n: number) => new StoredEvent(stored(n));
const markers = (events: readonly StoredEvent[]) => events.map((e) => markerOf(e.json));

describe('gatherer', () => {
  function setup(slots: number, lanes: Array<{ maxBatch: number; lingerMs: number }>) {
    const clock = new FakeClock();
    const g = new Gatherer<number>(slots, clock);
    const sent: Array<{ lane: number; batch: number[]; at: number }> = [];
    const pending: Array<() => void> = [];
    const handles = lanes.map((policy, lane) =>
      g.lane(policy, (batch) => {
        sent.push({ lane, batch, at: clock.now() });
        return new Promise<void>((resolve) => pending.push(resolve));
      }),
    );
    const finishAll = async () => {
      for (const done of pending.splice(0)) done();
      await settle();
    };
    return { clock, g, sent, handles, finishAll };
  }

  test('sends an item at once when a slot is free and nothing lingers', async () => {
    const { handles, sent } = setup(1, [{ maxBatch: 1, lingerMs: 0 }]);
    handles[0].add([1]);
    assert.deepEqual(sent.map((s) => s.batch), [[1]]);
  });

  test('gathers items while every slot is busy and sends them together, at most maxBatch at a time', async () => {
    const { handles, sent, finishAll } = setup(1, [{ maxBatch: 3, lingerMs: 0 }]);
    handles[0].add([1]);
    handles[0].add([2]);
    handles[0].add([3, 4, 5, 6]);
    assert.deepEqual(sent.map((s) => s.batch), [[1]], 'the others wait for the slot');
    await finishAll();
    assert.deepEqual(sent.map((s) => s.batch), [[1], [2, 3, 4]]);
    await finishAll();
    assert.deepEqual(sent.map((s) => s.batch), [[1], [2, 3, 4], [5, 6]]);
  });

  test('holds a part-full batch for linger, and sends as soon as maxBatch items wait', async () => {
    const { clock, handles, sent } = setup(2, [{ maxBatch: 3, lingerMs: 100 }]);
    handles[0].add([1]);
    await clock.advance(99);
    assert.equal(sent.length, 0, 'still lingering');
    await clock.advance(1);
    assert.deepEqual(sent.map((s) => s.batch), [[1]]);
    handles[0].add([2, 3]);
    handles[0].add([4]);
    assert.deepEqual(sent.map((s) => s.batch), [[1], [2, 3, 4]], 'full: no waiting');
  });

  test('serves the lane added first before the others', async () => {
    const { handles, sent, finishAll } = setup(1, [
      { maxBatch: 10, lingerMs: 0 },
      { maxBatch: 1, lingerMs: 0 },
    ]);
    handles[1].add([1]);
    handles[1].add([2]);
    handles[0].add([100, 101]);
    await finishAll();
    assert.deepEqual(sent.map((s) => [s.lane, s.batch]), [
      [1, [1]],
      [0, [100, 101]],
    ]);
  });

  test('hurry() stops lingering; take() hands back what waits', async () => {
    const { g, handles, sent } = setup(1, [{ maxBatch: 10, lingerMs: 60_000 }]);
    handles[0].add([1, 2]);
    g.hurry();
    assert.deepEqual(sent.map((s) => s.batch), [[1, 2]]);
    handles[0].add([3]);
    assert.deepEqual(handles[0].take(), [3]);
    assert.equal(g.waiting, 0);
  });
});

describe('pacer', () => {
  test('spaces sends by the rate limit', async () => {
    const clock = new FakeClock();
    const p = new Pacer(4, clock);
    const times: number[] = [];
    const turns = Promise.all([0, 1, 2].map(() => p.turn(new AbortController().signal).then(() => times.push(clock.now()))));
    await clock.advance(1000);
    await turns;
    assert.deepEqual(times.map((t) => t - times[0]), [0, 250, 500]);
  });

  test('a Retry-After pause holds every send until it ends; an abort ends the wait', async () => {
    const clock = new FakeClock();
    const p = new Pacer(0, clock);
    p.pause(5000);
    assert.equal(p.pausedUntil, clock.now() + 5000);
    let went = false;
    const turn = p.turn(new AbortController().signal).then(() => (went = true));
    await clock.advance(4999);
    assert.equal(went, false);
    await clock.advance(1);
    await turn;
    p.pause(1000);
    const ac = new AbortController();
    const aborted = assert.rejects(p.turn(ac.signal));
    ac.abort(new Error('stop'));
    await aborted;
  });
});

describe('one attempt', () => {
  const opts = (clock: FakeClock, stop = new AbortController().signal) => ({ attempt: 1, timeoutMs: 1000, stop, clock, redact: (e: OutputError) => e });
  const boom = new OutputError('down', { reason: 'serverError', retryable: true });

  test('a send that resolves delivered every event it did not report as failed', async () => {
    const batch = [ev(1), ev(2), ev(3)];
    const refused = new OutputError('no', { reason: 'clientError', retryable: false });
    const out = await attempt(batch, async (ctx) => ctx.failed([batch[1]], refused), opts(new FakeClock()));
    assert.deepEqual(markers(out.delivered), [1, 3]);
    assert.deepEqual(out.failed.map((f) => [markers(f.events), f.error.message]), [[[2], 'no']]);
  });

  test('a send that throws fails only the events it had not reported delivered', async () => {
    const batch = [ev(1), ev(2), ev(3)];
    const out = await attempt(
      batch,
      async (ctx) => {
        ctx.delivered([batch[0]]);
        throw boom;
      },
      opts(new FakeClock()),
    );
    assert.deepEqual(markers(out.delivered), [1]);
    assert.deepEqual(markers(out.failed[0].events), [2, 3]);
    assert.equal(out.failed[0].error, boom);
  });

  test('a send that never ends is abandoned at the timeout; what it reported before counts; later reports do not', async () => {
    const clock = new FakeClock();
    const batch = [ev(1), ev(2)];
    let late: SendContext | undefined;
    const p = attempt(
      batch,
      (ctx) => {
        ctx.delivered([batch[0]]);
        late = ctx;
        return new Promise(() => {});
      },
      opts(clock),
    );
    await clock.advance(1000);
    const out = await p;
    assert.deepEqual(markers(out.delivered), [1]);
    assert.equal(out.failed[0].error.reason, 'timeout');
    assert.ok(late!.signal.aborted, 'the adapter was told to stop');
    late!.delivered([batch[1]]);
    assert.deepEqual(markers(out.delivered), [1]);
  });

  test('stopping the router hands the batch back instead of failing it', async () => {
    const stop = new AbortController();
    const p = attempt([ev(1)], () => new Promise(() => {}), opts(new FakeClock(), stop.signal));
    stop.abort();
    await assert.rejects(p, HandBack);
  });

  test('every error text goes through the redactor once', async () => {
    const redactor = new Redactor(['https://hooks.example/services/T00/B00/secret-token-123']);
    const out = await attempt(
      [ev(1)],
      async () => {
        throw new OutputError('POST https://hooks.example/services/T00/B00/secret-token-123 answered 400: bad token secret-token-123', { reason: 'clientError', retryable: false });
      },
      { ...opts(new FakeClock()), redact: (e) => e.withMessage(redactor.text(e.message)) },
    );
    assert.equal(out.failed[0].error.message, 'POST https://hooks.example/*** answered 400: bad token ***');
    assert.equal(out.failed[0].error.retryable, false, 'the classification is kept');
  });
});

describe('redaction', () => {
  test('hides a URL, its path, path segments and query values that can be tokens, in plain, encoded and JSON-escaped forms', () => {
    const r = new Redactor(['https://user:pw-123456@hooks.example.com/services/T0AB/B0CD/XyZsecret?token=abcdef123456&v=1']);
    for (const [input, want] of [
      ['to https://user:pw-123456@hooks.example.com/services/T0AB/B0CD/XyZsecret?token=abcdef123456&v=1 failed', 'to https://hooks.example.com/*** failed'],
      ['path /services/T0AB/B0CD/XyZsecret?token=abcdef123456&v=1', 'path /***'],
      ['echo "url":"https:\\/\\/user:pw-123456@hooks.example.com\\/services\\/T0AB\\/B0CD\\/XyZsecret?token=abcdef123456&v=1"', 'echo "url":"https://hooks.example.com/***"'],
      ['invalid token abcdef123456', 'invalid token ***'],
      ['segment XyZsecret unknown', 'segment *** unknown'],
      ['%2Fservices%2FT0AB%2FB0CD%2FXyZsecret', '/***'],
      ['password pw-123456', 'password ***'],
    ]) {
      assert.equal(r.text(input), want, input);
    }
  });

  test('a text cut short inside a secret loses the start of that secret too; error texts are cut only after redaction', () => {
    const r = new Redactor(['https://hooks.example.com/services/T0AB/B0CD/XyZsecretToken99']);
    assert.equal(r.text('echo: POST /services/T0AB/B0CD/XyZsecr'), 'echo: POST /***/T0AB/B0CD/***');
    assert.equal(r.text('ends in https'), 'ends in https', 'a scheme is not a secret');
    const long = `${'x'.repeat(990)} /services/T0AB/B0CD/XyZsecretToken99 and more`;
    const m = r.message(long);
    assert.ok(!m.includes('XyZsecr'), m.slice(-40));
    assert.ok(m.length <= 1001);
  });

  test('hides header values and the token after a scheme word; leaves short values and ordinary words alone', () => {
    const r = new Redactor([{ Authorization: 'Bearer s3cr3t-value-xyz', 'X-Team': 'ops' }]);
    assert.equal(r.text('got Bearer s3cr3t-value-xyz and s3cr3t-value-xyz for ops'), 'got *** and *** for ops');
    assert.deepEqual(r.value({ headers: { authorization: 'Bearer s3cr3t-value-xyz' }, n: 1 }), { headers: { authorization: '***' }, n: 1 });
  });
});

describe('worker', () => {
  const instance = (delivery: Partial<OutputInstance['delivery']> = {}): OutputInstance => ({
    name: 'out',
    type: 'test',
    origin: 'outputs[0]',
    minimumpriority: 0,
    settings: {},
    delivery: { attempts: 3, initialdelay: 1000, maxdelay: 60_000, timeout: 5000, concurrency: 1, maxbatch: 10, linger: 0, ratelimit: 0, summarizeabove: 0, ...delivery },
  });

  function logs() {
    const lines: string[] = [];
    const logger = createLogger(
      'debug',
      new Writable({
        write(chunk, _e, cb) {
          lines.push(...String(chunk).split('\n').filter(Boolean));
          cb();
        },
      }),
    );
    return { lines, logger };
  }

  /** A worker over a real memory queue; `send` decides each call's fate. */
  function start(output: Output, delivery: Partial<OutputInstance['delivery']> = {}, noise: Pick<OutputInstance, 'dedup' | 'throttle'> = {}) {
    const clock = new FakeClock();
    const queue = new MemoryQueue(1000, clock);
    const { lines, logger } = logs();
    const w = new DeliveryWorker({ instance: { ...instance(delivery), ...noise }, output, queue, logger, clock });
    w.start();
    const enqueue = (...ns: number[]) => queue.enqueue(new Map([['out', ns.map(stored)]]), clock.now());
    return { clock, queue, w, lines, enqueue };
  }

  const deadMarkers = async (q: QueueDriver) => (await q.listDeadLetters('out')).map((d) => markerOf(d.event));

  test('retries only the events that failed, and dead-letters only the refused', async () => {
    const calls: number[][] = [];
    const output: Output = {
      async send(batch, ctx) {
        calls.push(markers(batch));
        for (const e of batch) {
          const n = markerOf(e.json);
          if (n === 2 && ctx.attempt === 1) ctx.failed([e], new OutputError('busy', { reason: 'serverError', retryable: true }));
          if (n === 4) ctx.failed([e], new OutputError('refused', { reason: 'clientError', retryable: false }));
        }
      },
    };
    const { clock, queue, lines, enqueue } = start(output);
    await enqueue(0, 1, 2, 3, 4);
    await clock.advance(0);
    assert.deepEqual(calls, [[0, 1, 2, 3, 4]]);
    assert.deepEqual(await deadMarkers(queue), [4], 'the refused one at once');
    await clock.advance(1000);
    assert.deepEqual(calls, [[0, 1, 2, 3, 4], [2]], 'only the failed one again, after the backoff');
    await settle();
    assert.equal(await queue.depth('out'), 0);
    const failed = lines.filter((l) => l.includes('delivery attempt failed'));
    assert.equal(failed.length, 2);
    assert.match(failed.find((l) => l.includes('busy'))!, /"uuid":"[0-9a-f-]{36}"/, 'the log line names the alert');
  });

  test('retries the failed events in queue order, whatever order their errors came in (FIFO destinations)', async () => {
    const calls: number[][] = [];
    const { clock, enqueue } = start({
      async send(batch, ctx) {
        calls.push(markers(batch));
        if (ctx.attempt > 1) return;
        const by = (n: number) => batch.filter((e) => markerOf(e.json) === n);
        ctx.failed(by(4), new OutputError('throttled', { reason: 'serverError', retryable: true }));
        ctx.failed(by(1), new OutputError('internal', { reason: 'serverError', retryable: true }));
      },
    });
    await enqueue(0, 1, 2, 3, 4, 5);
    await clock.advance(5000);
    assert.deepEqual(calls, [[0, 1, 2, 3, 4, 5], [1, 4]]);
  });

  test('backs off (doubling from initialdelay) and dead-letters after the last attempt', async () => {
    const at: number[] = [];
    const { clock, queue, enqueue } = start(
      {
        async send() {
          at.push(clock.now());
          throw new OutputError('down', { reason: 'serverError', retryable: true });
        },
      },
      { attempts: 3, initialdelay: 1000 },
    );
    await enqueue(7);
    await clock.advance(10_000);
    assert.equal(at.length, 3);
    const gaps = [at[1] - at[0], at[2] - at[1]];
    assert.ok(gaps[0] >= 500 && gaps[0] <= 1000, `first backoff within [500, 1000]: ${gaps[0]}`);
    assert.ok(gaps[1] >= 1000 && gaps[1] <= 2000, `second backoff within [1000, 2000]: ${gaps[1]}`);
    const [dl] = await queue.listDeadLetters('out');
    assert.equal(dl.attempts, 3);
    assert.match(dl.reason, /down \(gave up after 3 attempts\)/);
  });

  test('a 429 does not use up attempts and its Retry-After pauses the output', async () => {
    const at: number[] = [];
    let n = 0;
    const { clock, queue, w, enqueue } = start(
      {
        async send() {
          at.push(clock.now());
          if (n++ < 3) throw new OutputError('slow down', { reason: 'rateLimited', retryable: true, retryAfterMs: 30_000 });
        },
      },
      { attempts: 2 },
    );
    await enqueue(1);
    await clock.advance(0);
    assert.ok(w.state.pausedUntil, 'the pause shows in the state');
    await clock.advance(100_000);
    assert.deepEqual(at.map((t) => t - at[0]), [0, 30_000, 60_000, 90_000]);
    assert.equal(await queue.deadLetterCount('out'), 0, 'three 429s with attempts: 2, yet not dead-lettered');
  });

  test('an output whose set-up fails keeps its alerts, retries set-up with backoff, then delivers them', async () => {
    let setups = 0;
    let healthy = false;
    const sent: number[] = [];
    const { clock, queue, w, enqueue } = start({
      async setup() {
        setups++;
        if (!healthy) throw new Error('aws.checkidentity: identity check failed: ExpiredToken');
      },
      async send(batch) {
        sent.push(...markers(batch));
      },
    });
    await enqueue(1, 2);
    await clock.advance(5000);
    assert.ok(setups >= 3, `set-up tried again (${setups})`);
    assert.equal(w.state.status, 'setting-up');
    assert.match(w.state.setupError!.message, /ExpiredToken/);
    assert.equal(await queue.depth('out'), 2, 'the alerts wait');
    healthy = true;
    await clock.advance(60_000);
    assert.equal(w.state.status, 'running');
    assert.deepEqual(sent, [1, 2]);
  });

  test('beyond summarizeabove, the oldest alerts go into one summary and the rest are sent one by one', async () => {
    const sent: number[] = [];
    const summaries: number[][] = [];
    const { clock, enqueue } = start(
      {
        async send(batch) {
          sent.push(...markers(batch));
        },
        async sendSummary(groups) {
          summaries.push(groups.map((g) => g.count));
        },
      },
      { summarizeabove: 3, maxbatch: 1 },
    );
    await enqueue(...Array.from({ length: 10 }, (_, i) => i));
    await clock.advance(0);
    assert.deepEqual(summaries, [[7]], 'one summary, one group (one rule), for the seven oldest');
    assert.deepEqual(sent, [7, 8, 9]);
  });

  test('an output without a summary format gets a summary\'s groups one by one; a retry resends only the groups that did not go out', async () => {
    const sent: string[] = [];
    let failOnce = true;
    const { clock, queue } = start(
      {
        // As the webhook output: one call per alert, each reported as it goes out.
        async send(batch, ctx) {
          for (const e of batch) {
            const rule = String(e.event.output_fields['summary.key.rule'] ?? e.event.rule);
            if (rule === 'B' && failOnce) {
              failOnce = false;
              throw new OutputError('busy', { reason: 'serverError', retryable: true });
            }
            sent.push(rule);
            ctx.delivered([e]);
          }
        },
      },
      { summarizeabove: 2, maxbatch: 1 },
    );
    // Six alerts at once: the four oldest (two rules) go into one summary of two groups.
    await queue.enqueue(new Map([['out', ['A', 'A', 'B', 'B', 'C', 'C'].map((rule, i) => falcoEvent(i, 'Warning', rule).replace('{', `{"uuid":"${randomUUID()}",`))]]), clock.now());
    await clock.advance(5000);
    assert.deepEqual(sent, ['A', 'B', 'C', 'C'], 'group A went out once, B after its retry');
  });

  test('a summary of many rules reports each group\'s outcome for that rule\'s alerts only', async () => {
    const refused = new OutputError('refused', { reason: 'clientError', retryable: false });
    const odd = (rule: string) => Number(rule.slice('rule-'.length)) % 2 === 1;
    const { clock, queue } = start(
      {
        // The summaries of odd rules are refused: their alerts, and only theirs, become dead letters.
        async send(batch, ctx) {
          for (const e of batch) {
            const rule = e.event.output_fields['summary.key.rule'];
            if (typeof rule === 'string' && odd(rule)) ctx.failed([e], refused);
            else ctx.delivered([e]);
          }
        },
      },
      { summarizeabove: 1, maxbatch: 1 },
    );
    // 1,000 alerts of 500 rules, two each, in one job: all but the newest go into one summary.
    const rules = Array.from({ length: 1000 }, (_, i) => `rule-${i % 500}`);
    await queue.enqueue(new Map([['out', rules.map((rule, i) => falcoEvent(i, 'Warning', rule).replace('{', `{"uuid":"${randomUUID()}",`))]]), clock.now());
    await clock.advance(0);
    const dead = await queue.listDeadLetters('out', 10_000);
    const summarised = rules.slice(0, 999);
    assert.deepEqual(dead.map((d) => markerOf(d.event)).sort((a, b) => a - b), summarised.flatMap((r, i) => (odd(r) ? [i] : [])), 'the alerts of the refused rules, each once');
    assert.equal(await queue.depth('out'), 0);
  });

  test('records progress about once a second while a long job is delivered, so a crash repeats at most that second', async () => {
    const sent: number[] = [];
    const { clock, queue, enqueue } = start(
      {
        async send(batch) {
          await new Promise<void>((resolve) => clock.setTimeout(resolve, 300));
          sent.push(...markers(batch));
        },
      },
      { maxbatch: 1 },
    );
    await enqueue(...Array.from({ length: 10 }, (_, i) => i));
    await clock.advance(1250);
    assert.deepEqual(sent, [0, 1, 2, 3]);
    assert.equal(await queue.depth('out'), 6, 'the queue knows the first four went out before the job ended');
  });

  test('flood control counts what was sent but not yet recorded: a backlog back within the bound is not summarised', async () => {
    const sent: number[] = [];
    const summaries: number[][] = [];
    const { clock, queue, enqueue } = start(
      {
        async send(batch) {
          await new Promise<void>((resolve) => clock.setTimeout(resolve, 100));
          sent.push(...markers(batch));
        },
        async sendSummary(groups) {
          summaries.push(groups.map((g) => g.count));
        },
      },
      { summarizeabove: 3, maxbatch: 1 },
    );
    await enqueue(...Array.from({ length: 10 }, (_, i) => i));
    await clock.advance(250);
    assert.deepEqual(summaries, [[7]]);
    assert.deepEqual(sent, [7, 8]);
    // The queue still counts 10 for the first job; 9 of them are settled.
    await queue.enqueue(new Map([['out', [stored(20), stored(21)]]]), clock.now());
    await clock.advance(1000);
    assert.deepEqual(summaries, [[7]], 'the new alerts are within the bound: no summary');
    assert.deepEqual(sent, [7, 8, 9, 20, 21]);
  });

  test('a stop hands back a job in backoff; the next worker resumes after what was delivered', async () => {
    let fail = true;
    const sent: number[] = [];
    const output: Output = {
      async send(batch, ctx) {
        for (const e of batch) {
          if (markerOf(e.json) === 2 && fail) ctx.failed([e], new OutputError('busy', { reason: 'serverError', retryable: true }));
          else sent.push(markerOf(e.json));
        }
      },
    };
    const { clock, queue, w, enqueue } = start(output, { maxbatch: 1 });
    await enqueue(0, 1, 2, 3);
    await clock.advance(0);
    assert.deepEqual(sent, [0, 1]);
    const stopped = w.stop(5000, { drain: false });
    await clock.advance(0);
    await stopped;
    fail = false;
    assert.equal(await queue.depth('out'), 2, 'what was delivered is recorded; the rest is back in the queue');
    const next = new DeliveryWorker({ instance: instance({ maxbatch: 1 }), output, queue, logger: createLogger('silent'), clock });
    next.start();
    await clock.advance(0);
    assert.deepEqual(sent, [0, 1, 2, 3]);
  });
});

describe('dedup and throttle', () => {
  /** Alerts as ingest stores them; `over` changes the rule or fields. */
  const alertJson = (n: number, rule = 'Terminal shell in container', fields: Record<string, string> = {}) =>
    JSON.stringify({
      uuid: randomUUID(),
      output: `shell ${n}`,
      priority: n % 2 ? 'Warning' : 'Critical',
      rule,
      time: `2025-04-02T15:15:${String(n % 60).padStart(2, '0')}Z`,
      output_fields: { 'evt.time': 1743606903434319636 + n, 'k8s.pod.name': `pod-${n % 3}`, 'proc.cmdline': 'sh -i', 'proc.pid': n, 'test.n': n, ...fields },
      source: 'syscall',
      hostname: 'node-1',
    }).replace(/"test\.n":\d+/, (m) => m);

  function run(output: Output, noise: Pick<OutputInstance, 'dedup' | 'throttle'>, delivery: Partial<OutputInstance['delivery']> = {}) {
    const clock = new FakeClock();
    const queue = new MemoryQueue(10_000, clock);
    const filtered: Array<[string, number]> = [];
    /** What the metrics would say: alerts delivered, filtered (held back) and dead-lettered. */
    const counts = { delivered: 0, filtered: 0, deadLettered: 0 };
    const observer: DeliveryObserver = {
      filtered: (_o, reason, n) => {
        filtered.push([reason, n]);
        counts.filtered += n;
      },
      delivered: (_o, _t, n) => void (counts.delivered += n),
      deadLettered: (_o, _t, n) => void (counts.deadLettered += n),
    };
    const instance: OutputInstance = {
      name: 'out',
      type: 'test',
      origin: 'o',
      minimumpriority: 0,
      settings: {},
      ...noise,
      delivery: { attempts: 3, initialdelay: 100, maxdelay: 1000, timeout: 5000, concurrency: 1, maxbatch: 1, linger: 0, ratelimit: 0, summarizeabove: 0, ...delivery },
    };
    const worker = () => new DeliveryWorker({ instance, output, queue, logger: createLogger('silent'), clock, observer });
    const w = worker();
    w.start();
    const post = (...jsons: string[]) => queue.enqueue(new Map([['out', jsons]]), clock.now());
    return { clock, queue, w, filtered, counts, post, worker };
  }

  test('dedup: alerts that differ only in times and process ids are sent once per window; then one follow-up says how many more came', async () => {
    // Identical but for evt.time and proc.pid (left out of the default key); the output line carries a marker.
    const same = (n: number, cmd = 'sh -i') =>
      JSON.stringify({ uuid: randomUUID(), output: `shell #${n}`, priority: 'Warning', rule: 'Terminal shell in container', time: `2025-04-02T15:16:${String(n).padStart(2, '0')}Z`, output_fields: { 'evt.time': 1743606903434319636 + n, 'proc.cmdline': cmd, 'proc.pid': 100 + n }, source: 'syscall', hostname: 'node-1' });
    const sent: string[] = [];
    const summaries: SummaryGroup[][] = [];
    const { clock, filtered, post } = run(
      { send: async (b) => void sent.push(...b.map((e) => e.event.output)), sendSummary: async (g) => void summaries.push([...g]) },
      { dedup: { window: 60_000 } },
    );
    for (let i = 0; i < 5; i++) await post(same(i));
    await post(same(9, 'bash'));
    await clock.advance(1000);
    assert.deepEqual(sent, ['shell #0', 'shell #9'], 'the first, and the one with another command line');
    assert.deepEqual(filtered, [['dedup', 1], ['dedup', 1], ['dedup', 1], ['dedup', 1]]);
    await clock.advance(60_000);
    assert.equal(summaries.length, 1, 'one follow-up: the other key held nothing back');
    const [g] = summaries[0];
    assert.deepEqual([g.reason, g.count, g.key], ['dedup', 4, [['rule', 'Terminal shell in container'], ['hostname', 'node-1']]]);
    assert.equal(g.first, '2025-04-02T15:16:01Z');
    assert.equal(g.last, '2025-04-02T15:16:04Z');
  });

  test('throttle: at most max per key one by one, then one summary per key when the window ends', async () => {
    const sent: number[] = [];
    const summaries: SummaryGroup[][] = [];
    const { clock, filtered, post } = run(
      { send: async (b) => void sent.push(...markers(b)), sendSummary: async (g) => void summaries.push([...g]) },
      { throttle: { window: 60_000, max: 2 } },
    );
    for (let i = 0; i < 6; i++) await post(alertJson(i));
    for (let i = 10; i < 13; i++) await post(alertJson(i, 'Read sensitive file untrusted'));
    await clock.advance(1000);
    assert.deepEqual(sent, [0, 1, 10, 11]);
    assert.deepEqual(filtered, [['throttle', 1], ['throttle', 1], ['throttle', 1], ['throttle', 1], ['throttle', 1]]);
    assert.equal(summaries.length, 0, "no summary before the window ends");
    await clock.advance(60_000);
    const groups = summaries.flat().sort((a, b) => b.count - a.count);
    assert.deepEqual(groups.map((g) => [g.reason, g.key, g.count]), [
      ['throttle', [['rule', 'Terminal shell in container']], 4],
      ['throttle', [['rule', 'Read sensitive file untrusted']], 1],
    ]);
    assert.deepEqual(groups[0].byPriority, { Critical: 2, Warning: 2 });
    assert.deepEqual(groups[0].pods.sort(), ['pod-0', 'pod-1', 'pod-2']);
    assert.equal(groups[0].first, '2025-04-02T15:15:02Z');
    assert.equal(groups[0].last, '2025-04-02T15:15:05Z');
  });

  test('an output without a summary format gets each summary as one alert in falcosidekick\'s shape', async () => {
    const bodies: string[] = [];
    const { clock, post } = run({ send: async (b) => void bodies.push(...b.map((e) => e.json)) }, { throttle: { window: 10_000, max: 1 } });
    for (let i = 0; i < 4; i++) await post(alertJson(i));
    await clock.advance(11_000);
    assert.equal(bodies.length, 2);
    const summary = JSON.parse(bodies[1]) as { rule: string; priority: string; output: string; output_fields: Record<string, unknown> };
    assert.equal(summary.rule, 'Falco router summary');
    assert.equal(summary.priority, 'Critical', 'the highest priority held back');
    assert.equal(summary.output_fields['summary.count'], 3);
    assert.equal(summary.output_fields['summary.reason'], 'throttle');
    assert.equal(summary.output_fields['summary.key.rule'], 'Terminal shell in container');
    assert.match(summary.output, /^Falco router summary: 3 more alerts for rule Terminal shell in container held back/);
  });

  test('the same alert counted again (its job repeated after a crash) counts once', async () => {
    const sent: number[] = [];
    const { clock, queue, post } = run({ send: async (b) => void sent.push(...markers(b)) }, { throttle: { window: 60_000, max: 1 } });
    const a = alertJson(1);
    await post(a);
    await post(a);
    await clock.advance(1000);
    assert.deepEqual(sent, [1, 1], 'a repeat of the first alert is sent again (at-least-once), not held back');
    assert.equal(await queue.depth('out'), 0);
  });

  test('alerts whose dedup keys all differ open at most MAX_OPEN_WINDOWS windows; the rest share an overflow window and its summary', async () => {
    let sent = 0;
    const summaries: SummaryGroup[] = [];
    const { clock, counts, post } = run(
      { send: async (b) => void (sent += b.length), sendSummary: async (g) => void summaries.push(...g) },
      { dedup: { window: 60_000 } },
      { maxbatch: 1000 },
    );
    // A command line that changes with every alert: each has a dedup key of its own.
    const alerts = Array.from({ length: MAX_OPEN_WINDOWS + 3 }, (_, i) => alertJson(0, 'Terminal shell in container', { 'proc.cmdline': `sh -c ${i}` }));
    for (let i = 0; i < alerts.length; i += 5000) {
      await post(...alerts.slice(i, i + 5000));
      await clock.advance(0);
    }
    await clock.advance(61_000);
    assert.equal(sent, MAX_OPEN_WINDOWS + 1, 'one alert per key, and the first of the overflow window');
    assert.deepEqual(summaries.map((g) => [g.count, g.overflow, summaryLine(g)]), [[2, true, '2 more alerts held back by dedup in its overflow window (more than 10000 keys with a window open), 15:15 UTC']]);
    assert.equal(counts.filtered, 2);
  });

  test('a key field that happens to be named overflow (a custom field) is summarised as its own key, not as the overflow window', async () => {
    const summaries: SummaryGroup[] = [];
    const { clock, post } = run({ send: async () => {}, sendSummary: async (g) => void summaries.push(...g) }, { throttle: { window: 60_000, max: 1, key: ['overflow'] } });
    for (let i = 0; i < 3; i++) await post(alertJson(i, 'Terminal shell in container', { overflow: 'eu-west' }));
    await clock.advance(61_000);
    assert.deepEqual(summaries.map((g) => [g.overflow, summaryLine(g)]), [[undefined, '2 more alerts for overflow=eu-west held back, 15:15 UTC (at most 1 per 1 min)']]);
  });

  test('a summary the output refuses is dead-lettered but not counted again: delivered + filtered + dead-lettered adds up to routed', async () => {
    const refused = new OutputError('refused', { reason: 'clientError', retryable: false });
    const { clock, queue, counts, post } = run(
      {
        async send(batch, ctx) {
          ctx.failed(batch.filter((e) => e.event.rule === 'Falco router summary'), refused);
        },
      },
      { dedup: { window: 60_000 } },
    );
    // Five identical alerts (each call gives a new uuid).
    for (let i = 0; i < 5; i++) await post(alertJson(0));
    await clock.advance(61_000);
    assert.deepEqual(counts, { delivered: 1, filtered: 4, deadLettered: 0 }, 'the 4 held back are counted once, as filtered');
    const [dl] = await queue.listDeadLetters('out');
    assert.match(dl.event, /"summary\.count":4/, 'the summary is kept as a dead letter, to be seen and requeued');
  });

  test('an alert held back is counted as filtered once, though its job is handed back and run again (a reload)', async () => {
    let down = true;
    const output: Output = {
      async send(batch, ctx) {
        if (down) ctx.failed(batch, new OutputError('busy', { reason: 'serverError', retryable: true }));
      },
    };
    const { clock, w, counts, post, worker } = run(output, { dedup: { window: 60_000 } });
    // One job of two identical alerts: the first is sent (and retried), the second held back.
    await post(alertJson(0), alertJson(0));
    await clock.advance(0);
    assert.equal(counts.filtered, 1);
    const stopped = w.stop(5000, { drain: false });
    await clock.advance(0);
    await stopped;
    down = false;
    worker().start();
    await clock.advance(1000);
    assert.deepEqual(counts, { delivered: 1, filtered: 1, deadLettered: 0 }, '2 routed: 1 delivered + 1 held back');
  });

  test('an alert dedup held back is counted once when throttle cannot count and the job goes back', async () => {
    const { clock, queue, counts, post } = run({ send: async () => {} }, { dedup: { window: 60_000 }, throttle: { window: 60_000, max: 10 } });
    const count = queue.countInWindows.bind(queue);
    let redisAway = true;
    queue.countInWindows = async (...args: Parameters<typeof count>) => {
      if (args[1][0]?.kind === 'throttle' && redisAway) {
        redisAway = false;
        throw new Error('Redis is away');
      }
      return count(...args);
    };
    await post(alertJson(0), alertJson(0), alertJson(1));
    await clock.advance(1000);
    assert.deepEqual(counts, { delivered: 2, filtered: 1, deadLettered: 0 }, '3 routed: 2 delivered + 1 held back');
  });

  test('a graceful stop (memory queue) sends the summaries of open windows before a slow backlog; alerts counted after that open a new window', async () => {
    const order: string[] = [];
    const { clock, w, post } = run(
      { send: async (b) => void order.push(...b.map((e) => e.event.rule)), sendSummary: async (g) => void order.push(...g.map((x) => `summary of ${x.count}`)) },
      { throttle: { window: 3_600_000, max: 1 } },
      { ratelimit: 1 },
    );
    for (let i = 0; i < 3; i++) await post(alertJson(i, 'A'));
    await clock.advance(0);
    // A backlog at one send a second, then two more of rule A behind it.
    for (let i = 1; i <= 5; i++) await post(alertJson(i, `B${i}`));
    await post(alertJson(3, 'A'), alertJson(4, 'A'));
    const stopped = w.stop(60_000, { drain: true });
    for (let i = 0; i < 20; i++) await clock.advance(1000);
    await stopped;
    assert.ok(order.indexOf('summary of 2') >= 0 && order.indexOf('summary of 2') < order.indexOf('B5'), `the summary goes before the backlog: ${order}`);
    assert.deepEqual(order.filter((x) => x === 'A' || x.startsWith('summary')), ['A', 'summary of 2', 'A', 'summary of 1'], 'of 5 alerts of rule A, 2 sent and 3 summarised');
  });

  test('a graceful stop (memory queue) closes the open windows: what they held back is summarised, not lost', async () => {
    const summaries: SummaryGroup[][] = [];
    const { clock, w, post } = run({ send: async () => {}, sendSummary: async (g) => void summaries.push([...g]) }, { throttle: { window: 3_600_000, max: 1 } });
    for (let i = 0; i < 3; i++) await post(alertJson(i));
    await clock.advance(100);
    const stopped = w.stop(5000, { drain: true });
    await clock.advance(100);
    await stopped;
    assert.deepEqual(summaries.flat().map((g) => g.count), [2]);
  });
});

describe('group commit', () => {
  test('one queue write per group: requests that arrive during a write go together in the next', async () => {
    const writes: number[] = [];
    let release: () => void = () => {};
    const queue = {
      enqueue: (perOutput: ReadonlyMap<string, readonly string[]>) => {
        writes.push([...perOutput.values()].reduce((n, l) => n + l.length, 0));
        return new Promise<void>((r) => (release = r));
      },
    } as unknown as QueueDriver;
    const gc = new GroupCommit(queue, 1000);
    const first = gc.submit([['out', 'a']]);
    await settle();
    const rest = [gc.submit([['out', 'b']]), gc.submit([['out', 'c'], ['other', 'c']])];
    await settle();
    assert.deepEqual(writes, [1], 'the others wait for the write in flight');
    release();
    await first;
    await settle();
    assert.deepEqual(writes, [1, 3]);
    release();
    await Promise.all(rest);
  });
});

test('backoff: equal jitter, doubling, capped', () => {
  assert.equal(backoffDelay(1, 1000, 60_000, () => 0), 500);
  assert.equal(backoffDelay(1, 1000, 60_000, () => 1), 1000);
  assert.equal(backoffDelay(3, 1000, 60_000, () => 0), 2000);
  assert.equal(backoffDelay(20, 1000, 60_000, () => 1), 60_000);
});
