/**
 * The same delivery behaviour, run against both queue drivers: memory and BullMQ on a real Redis.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestRouter, type TestRouter } from '../helpers/router.ts';
import { startHttpSink, type HttpSink } from '../../outputs/sdk/testkit/http-sink.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { waitFor, delay } from '../helpers/wait.ts';
import { F6, falcoEvent, markerOf } from '../fixtures/events.ts';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(() => redis.stop(true));

const FAST_RETRY = 'delivery: { attempts: 5, initialdelay: 20ms, maxdelay: 100ms, timeout: 2s }';

for (const driver of ['memory', 'redis'] as const) {
  describe(`${driver} driver`, () => {
    const queueYaml = () =>
      driver === 'memory'
        ? 'queue: { driver: memory }'
        : `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "t-${randomUUID().slice(0, 8)}", lockduration: 2s, stalledinterval: 1s } }`;

    async function withRouter(outputsYaml: string, fn: (r: TestRouter) => Promise<void>, extra = '') {
      const r = await startTestRouter(`${queueYaml()}\n${extra}\noutputs:\n${outputsYaml}`);
      try {
        await fn(r);
      } finally {
        await r.stop();
      }
    }

    test('delivers each accepted event once, as falcosidekick’s webhook body', async () => {
      const sink = await startHttpSink();
      await withRouter(
        `  - { name: hook, type: webhook, address: "${sink.url}", customheaders: { Authorization: "Bearer t0ken" } }`,
        async (r) => {
          assert.equal((await r.post(F6)).status, 200);
          for (let i = 0; i < 50; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
          await waitFor(() => sink.delivered().length === 51, 10_000, '51 deliveries');
          const first = sink.requests[0];
          assert.equal(first.method, 'POST');
          assert.equal(first.headers['content-type'], 'application/json; charset=utf-8');
          assert.equal(first.headers['user-agent'], 'Falcosidekick');
          assert.equal(first.headers['authorization'], 'Bearer t0ken');
          assert.match(first.body, /^\{"uuid":"[0-9a-f-]{36}","output":"16:31:56\.746609046: Error .*"output_fields":\{"evt\.time":1507591916746609046,.*"source":"syscalls","hostname":"localhost"\}\n$/);
          const markers = sink.delivered().slice(1).map(markerOf).sort((a, b) => a - b);
          assert.deepEqual(markers, Array.from({ length: 50 }, (_, i) => i));
        },
      );
      await sink.close();
    });

    test('retries a webhook that answers 503 three times, then delivers once it recovers', async () => {
      const sink = await startHttpSink([{ status: 503 }, { status: 503 }, { status: 503 }, { status: 200 }]);
      await withRouter(`  - { name: hook, type: webhook, address: "${sink.url}", ${FAST_RETRY} }`, async (r) => {
        assert.equal((await r.post(F6)).status, 200);
        await waitFor(() => sink.delivered().length === 1, 10_000, 'delivery after recovery');
        assert.deepEqual(sink.requests.map((q) => q.status), [503, 503, 503, 200]);
        assert.ok(sink.requests.every((q) => q.body === sink.requests[0].body), 'the same event each time');
        const attempts = r.logs.filter((l) => l.includes('delivery attempt failed'));
        assert.equal(attempts.length, 3);
        assert.match(attempts[2], /"output":"hook".*"reason":"serverError".*"attempt":3/);
      });
      await sink.close();
    });

    test('dead-letters at once on a 400, keeps the reason, and re-queues on request', async () => {
      const sink = await startHttpSink([{ status: 400, body: 'field "x" not allowed' }]);
      await withRouter(`  - { name: hook, type: webhook, address: "${sink.url}", ${FAST_RETRY} }`, async (r) => {
        assert.equal((await r.post(falcoEvent(7))).status, 200);
        await waitFor(async () => (await r.queue.deadLetterCount('hook')) === 1, 10_000, 'a dead letter');
        await delay(200);
        assert.equal(sink.requests.length, 1, 'no retry after a 400');
        const text = await (await fetch(`${r.url}/api/v1/deadletters/hook`)).text();
        const list = JSON.parse(text) as { count: number; items: Array<{ id: string; reason: string; event: { output_fields: Record<string, unknown> }; attempts: number }> };
        assert.equal(list.count, 1);
        assert.match(list.items[0].reason, /answered 400: field "x" not allowed/);
        assert.equal(list.items[0].event.output_fields['test.n'], 7, 'the event is a JSON object, not a string');
        assert.match(text, /"evt\.time":1743606903434319643[,}]/, 'int64 fields exact in the answer');
        sink.script([{ status: 200 }]);
        const requeue = await fetch(`${r.url}/api/v1/deadletters/hook/requeue`, { method: 'POST', body: JSON.stringify({ ids: [list.items[0].id] }) });
        assert.deepEqual(await requeue.json(), { output: 'hook', requeued: 1 });
        await waitFor(() => sink.delivered().length === 1, 10_000, 'the re-queued event');
        assert.equal(markerOf(sink.delivered()[0]), 7);
        assert.equal(await r.queue.deadLetterCount('hook'), 0);
      });
      await sink.close();
    });

    test('dead-letters after the last attempt when the output stays down', async () => {
      const sink = await startHttpSink([{ status: 500 }]);
      await withRouter(`  - { name: hook, type: webhook, address: "${sink.url}", delivery: { attempts: 3, initialdelay: 10ms, maxdelay: 20ms } }`, async (r) => {
        await r.post(F6);
        await waitFor(async () => (await r.queue.deadLetterCount('hook')) === 1, 10_000, 'a dead letter');
        assert.equal(sink.requests.length, 3);
        const [dl] = await r.queue.listDeadLetters('hook');
        assert.match(dl.reason, /answered 500.*gave up after 3 attempts/);
        assert.equal(dl.attempts, 3);
      });
      await sink.close();
    });

    test('waits what Retry-After says before sending again after a 429', async () => {
      const sink = await startHttpSink([{ status: 429, headers: { 'retry-after': '1' } }, { status: 200 }]);
      await withRouter(`  - { name: hook, type: webhook, address: "${sink.url}", ${FAST_RETRY} }`, async (r) => {
        await r.post(F6);
        await waitFor(() => sink.delivered().length === 1, 10_000, 'delivery after Retry-After');
        const times = sink.requests.map((q) => q);
        assert.equal(times.length, 2);
        const log = r.logs.find((l) => l.includes('"reason":"rateLimited"'));
        assert.ok(log, 'the 429 was logged as rateLimited');
      });
      await sink.close();
    });

    test('times out a hung attempt and retries it', async () => {
      const sink = await startHttpSink([{ status: 200, delayMs: 3000 }, { status: 200 }]);
      await withRouter(
        `  - { name: hook, type: webhook, address: "${sink.url}", delivery: { attempts: 5, initialdelay: 10ms, maxdelay: 20ms, timeout: 300ms } }`,
        async (r) => {
          await r.post(F6);
          await waitFor(() => sink.requests.length >= 2, 10_000, 'a second attempt');
          assert.ok(r.logs.some((l) => l.includes('"reason":"timeout"')), 'the timeout was logged');
        },
      );
      await sink.close();
    });

    test('a failing output does not hold back another', async () => {
      const down = await startHttpSink([{ status: 503 }]);
      const up = await startHttpSink();
      await withRouter(
        `  - { name: down, type: webhook, address: "${down.url}", delivery: { attempts: 1000, initialdelay: 50ms, maxdelay: 200ms } }
  - { name: up, type: webhook, address: "${up.url}" }`,
        async (r) => {
          for (let i = 0; i < 100; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
          await waitFor(() => up.delivered().length === 100, 10_000, 'all events at the healthy output');
          assert.equal(down.delivered().length, 0);
        },
      );
      await down.close();
      await up.close();
    });

    test('routes by minimum priority, and "Test rule" reaches every output', async () => {
      const errors = await startHttpSink();
      const all = await startHttpSink();
      await withRouter(
        `  - { name: errors, type: webhook, address: "${errors.url}", minimumpriority: error }
  - { name: all, type: webhook, address: "${all.url}", minimumpriority: "" }`,
        async (r) => {
          await r.post(falcoEvent(1, 'Warning'));
          await r.post(falcoEvent(2, 'Critical'));
          await r.post(falcoEvent(3, 'Debug', 'Test rule'));
          await waitFor(() => all.delivered().length === 3 && errors.delivered().length === 2, 10_000, 'routed deliveries');
          assert.deepEqual(errors.delivered().map(markerOf).sort(), [2, 3]);
        },
      );
      await errors.close();
      await all.close();
    });

    test('uses PUT when method is put', async () => {
      const sink = await startHttpSink();
      await withRouter(`  - { name: hook, type: webhook, address: "${sink.url}", method: put }`, async (r) => {
        await r.post(F6);
        await waitFor(() => sink.delivered().length === 1);
        assert.equal(sink.requests[0].method, 'PUT');
      });
      await sink.close();
    });

    test('a graceful stop loses nothing that was acknowledged', async () => {
      const sink = await startHttpSink([{ status: 200, delayMs: 5 }]);
      const prefix = `t-${randomUUID().slice(0, 8)}`;
      const q =
        driver === 'memory'
          ? 'queue: { driver: memory }'
          : `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "${prefix}", lockduration: 2s, stalledinterval: 1s } }`;
      const outputs = `outputs:\n  - { name: hook, type: webhook, address: "${sink.url}", delivery: { concurrency: 1 } }`;
      const r = await startTestRouter(`${q}\n${outputs}`, { SHUTDOWN_GRACEPERIOD: "300ms" });
      const n = 200;
      for (let i = 0; i < n; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
      await r.stop();
      if (driver === 'memory') {
        // Memory: what is queued is delivered within the grace period or logged as lost.
        const lost = r.logs.find((l) => l.includes('not delivered'));
        const left = lost ? Number(/"events":(\d+)/.exec(lost)![1]) : 0;
        // An attempt cut short by the stop may have reached the sink too: at least once, never lost.
        const delivered = new Set(sink.delivered().map(markerOf)).size;
        assert.ok(delivered + left >= n && delivered <= n, `delivered ${delivered} + logged as left ${left} covers ${n}`);
      } else {
        // Redis: what was not delivered stays queued; a new process delivers it.
        const again = await startTestRouter(`${q}\n${outputs}`);
        await waitFor(() => new Set(sink.delivered().map(markerOf)).size === n, 20_000, 'every event after restart');
        await again.stop();
      }
      await sink.close();
    });
  });
}

describe('queue unavailable', () => {
  test('memory driver answers 503 when an output’s queue is full, and stores nothing for that request', async () => {
    const down = await startHttpSink([{ status: 503 }]);
    const r = await startTestRouter(`queue: { driver: memory, maxevents: 5 }
outputs:
  - { name: hook, type: webhook, address: "${down.url}", delivery: { attempts: 1000, initialdelay: 1s } }`);
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await r.post(falcoEvent(i))).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 503, 503, 503]);
    const res = await r.post(F6);
    assert.match(res.body, /^Service Unavailable: the event may not be stored: the memory queue of output "hook" is full/);
    assert.match(await (await fetch(`${r.url}/metrics`)).text(), /falco_router_events_rejected_total\{reason="queueUnavailable"\} 4/);
    await r.stop();
    await down.close();
  });

  test('memory driver: a full queue refuses only what goes to that output; alerts written in the same round trip for others are stored', async () => {
    const down = await startHttpSink([{ status: 503 }]);
    const up = await startHttpSink();
    const r = await startTestRouter(`queue: { driver: memory, maxevents: 3 }
outputs:
  - { name: hook, type: webhook, address: "${down.url}", minimumpriority: critical, delivery: { attempts: 1000, initialdelay: 1s } }
  - { name: up, type: webhook, address: "${up.url}" }`);
    try {
      for (let i = 0; i < 3; i++) assert.equal((await r.post(falcoEvent(i, 'Critical'))).status, 200);
      // Sent together, so that they share a queue write with a refused one.
      const statuses = await Promise.all([10, 11, 12, 13].map((n) => r.post(falcoEvent(n, n % 2 === 0 ? 'Warning' : 'Critical')).then((x) => x.status)));
      assert.deepEqual(statuses, [200, 503, 200, 503], 'Warning alerts (not for the full output) are stored');
      await waitFor(() => up.delivered().length === 7, 10_000, 'every alert at the healthy output');
      assert.deepEqual(up.delivered().map(markerOf).sort((a, b) => a - b), [0, 1, 2, 10, 11, 12, 13], 'a 503 alert still reached the output that had room');
    } finally {
      await r.stop();
      await down.close();
      await up.close();
    }
  });

  test('redis driver answers 503 while Redis is down and 200 again once it is back', async () => {
    const own = await startRedis();
    const sink = await startHttpSink();
    const r = await startTestRouter(`queue: { driver: redis, redis: { url: "${own.url}" } }
outputs:
  - { name: hook, type: webhook, address: "${sink.url}" }`);
    assert.equal((await r.post(falcoEvent(1))).status, 200);
    await own.stop(true);
    const down = await r.post(falcoEvent(2));
    assert.equal(down.status, 503);
    assert.match(down.body, /the event may not be stored/);
    assert.equal((await fetch(`${r.url}/ready`)).status, 503);
    await own.start();
    await waitFor(async () => (await r.post(falcoEvent(3))).status === 200, 15_000, 'ingest to recover');
    // A BullMQ worker whose fetch failed while Redis was away tries again 15 s later (its runRetryDelay).
    await waitFor(() => sink.delivered().map(markerOf).includes(3), 25_000, 'delivery after recovery');
    assert.equal((await fetch(`${r.url}/ready`)).status, 200);
    await r.stop();
    await sink.close();
    await own.stop(true);
  });
});
