/**
 * Running the router in production (issue 5): metrics that move, readiness, hot reload (in process
 * and as a real process on SIGHUP and on a file change), TLS and mutual TLS on ingest, the bearer
 * token, and check-config. Every test starts its own router, sinks and Redis on 127.0.0.1.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { Agent, request } from 'undici';
import { startTestRouter, tempDir, type TestRouter } from '../helpers/router.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor, delay } from '../helpers/wait.ts';
import { makeCerts, type TestCerts } from '../helpers/certs.ts';
import { spawnRouter, runCli } from '../helpers/process.ts';
import { startHttpSink, type HttpSink } from '../../outputs/sdk/testkit/http-sink.ts';
import { falcoEvent, markerOf } from '../fixtures/events.ts';
import { loadConfig } from '../../src/config/load.ts';
import { outputTypes, defaultOutput } from '../../outputs/index.ts';

// ---------------------------------------------------------------------------------------------
// Helpers

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format → samples. */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

class Scrape {
  constructor(
    readonly text: string,
    readonly samples = parseMetrics(text),
  ) {}
  /** Sum of the samples of `name` whose labels include `labels` (0 when there is none). */
  value(name: string, labels: Record<string, string> = {}): number {
    return this.find(name, labels).reduce((s, x) => s + x.value, 0);
  }
  find(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }
  has(name: string, labels: Record<string, string> = {}): boolean {
    return this.find(name, labels).length > 0;
  }
}

async function scrape(baseUrl: string): Promise<Scrape> {
  const res = await fetch(`${baseUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  return new Scrape(await res.text());
}

/** Waits until the metrics satisfy `check` (which throws an AssertionError while they do not). */
async function waitForMetrics(baseUrl: string, what: string, check: (m: Scrape) => void, timeoutMs = 15_000): Promise<Scrape> {
  let last: unknown;
  let got: Scrape | undefined;
  try {
    await waitFor(
      async () => {
        got = await scrape(baseUrl);
        try {
          check(got);
          return true;
        } catch (err) {
          last = err;
          return false;
        }
      },
      timeoutMs,
      what,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last mismatch: ${(last as Error)?.message}`);
  }
  return got!;
}

const ndjsonLines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
const markersIn = (file: string) => ndjsonLines(file).map(markerOf);

function redisQueueYaml(redis: TestRedis, tag: string): string {
  return `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "${tag}-${randomUUID().slice(0, 8)}", lockduration: 2s, stalledinterval: 1s } }`;
}

/** Loads `yaml` as the next config of an in-process router on the same address, and applies it. */
async function reloadWith(r: TestRouter, yaml: string, env: Record<string, string> = {}) {
  const file = join(tempDir(), 'next.yaml');
  writeFileSync(file, yaml);
  const port = new URL(r.url).port;
  const cfg = loadConfig({ file, env: { LISTENADDRESS: '127.0.0.1', LISTENPORT: port, SHUTDOWN_GRACEPERIOD: '1s', ...env }, types: outputTypes, defaultOutput });
  const result = await r.reload(cfg);
  assert.deepEqual(result.restartNeeded, [], 'nothing in these reloads needs a restart');
  return result;
}

async function closeAll(...closers: Array<{ close?: () => Promise<void>; stop?: (hard?: boolean) => Promise<unknown> } | undefined>) {
  for (const c of closers) {
    if (!c) continue;
    await (c.stop ? c.stop(true) : c.close!()).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Metrics

/** An alert whose output fields name a Kubernetes namespace and pod: neither may become a label. */
function k8sEvent(n: number): string {
  const ev = JSON.parse(falcoEvent(n)) as { output_fields: Record<string, unknown> };
  ev.output_fields['k8s.ns.name'] = 'payments-prod';
  ev.output_fields['k8s.pod.name'] = 'checkout-7f9c8d6b5-x2x9q';
  return JSON.stringify(ev);
}

for (const driver of ['memory', 'redis'] as const) {
  test(`metrics move as events are accepted, retried, delivered and dead-lettered (${driver} queue)`, async () => {
    const redis = driver === 'redis' ? await startRedis() : undefined;
    const flaky = await startHttpSink([{ status: 503 }]);
    const broken = await startHttpSink([{ status: 500 }]);
    let r: TestRouter | undefined;
    try {
      // The falcosidekick-style `webhook:` section gives destination="webhook", as falcosidekick does.
      r = await startTestRouter(`${redis ? redisQueueYaml(redis, 'metrics') : 'queue: { driver: memory }'}
webhook:
  address: "${flaky.url}"
  delivery: { attempts: 1000, initialdelay: 20ms, maxdelay: 50ms }
outputs:
  - { name: dl, type: webhook, address: "${broken.url}", delivery: { attempts: 2, initialdelay: 10ms, maxdelay: 20ms } }
`);
      const before = await scrape(r.url);
      const baseline = (name: string, labels: Record<string, string> = {}) => before.value(name, labels);
      assert.equal(before.value('falco_router_queue_depth', { output: 'webhook' }), 0);

      assert.equal((await r.post(falcoEvent(1))).status, 200);
      assert.equal((await r.post(falcoEvent(2))).status, 200);
      assert.equal((await r.post(k8sEvent(3))).status, 200);
      assert.equal((await r.post('')).status, 400);

      // While `webhook` answers 503 and `dl` answers 500: retries, dead letters, a backlog.
      const down = await waitForMetrics(r.url, 'retries and dead letters', (m) => {
        assert.equal(m.value('falco_router_events_dead_lettered_total', { output: 'dl', type: 'webhook', reason: 'serverError' }), 3);
        assert.equal(m.value('falco_router_dead_letters', { output: 'dl', type: 'webhook' }), 3);
        assert.equal(m.value('falcosecurity_falcosidekick_outputs_total', { destination: 'dl', status: 'error' }), 6, '3 events × 2 attempts');
        assert.equal(m.value('falco_router_queue_depth', { output: 'dl', type: 'webhook' }), 0, 'dead-lettered events leave the queue');
        assert.ok(m.value('falco_router_delivery_attempts_total', { output: 'webhook', type: 'webhook', outcome: 'serverError' }) >= 3);
        assert.ok(m.value('falcosecurity_falcosidekick_outputs_total', { destination: 'webhook', status: 'error' }) >= 3);
      });
      assert.equal(down.value('falco_router_queue_depth', { output: 'webhook', type: 'webhook' }), 3, 'the backlog of the output that is down');
      assert.equal(down.value('falco_router_dead_letters', { output: 'webhook', type: 'webhook' }), 0);
      assert.equal(down.value('falco_router_events_delivered_total', { output: 'webhook' }), 0);
      assert.equal(down.value('falcosecurity_falcosidekick_outputs_total', { destination: 'webhook', status: 'ok' }), 0);
      assert.equal(down.value('falco_router_delivery_latency_seconds_count', { output: 'webhook' }), 0);

      // Ingest side.
      const accepted = { source: 'requests', status: 'accepted' };
      assert.equal(down.value('falcosecurity_falcosidekick_inputs_total', accepted) - baseline('falcosecurity_falcosidekick_inputs_total', accepted), 3);
      const rejected = { source: 'requests', status: 'rejected' };
      assert.equal(down.value('falcosecurity_falcosidekick_inputs_total', rejected) - baseline('falcosecurity_falcosidekick_inputs_total', rejected), 1);
      assert.equal(down.value('falco_router_events_rejected_total', { reason: 'emptyBody' }) - baseline('falco_router_events_rejected_total', { reason: 'emptyBody' }), 1);
      assert.equal(down.value('falco_router_ingest_latency_seconds_count') - baseline('falco_router_ingest_latency_seconds_count'), 3);

      // falcosidekick's event counter, labels bounded: no namespace or pod even when the event has them.
      const labels = {
        hostname: 'node-1',
        k8s_ns_name: '',
        k8s_pod_name: '',
        priority: '4',
        priority_raw: 'warning',
        rule: 'Read sensitive file untrusted',
        source: 'syscall',
      };
      const series = down.find('falcosecurity_falcosidekick_falco_events_total');
      assert.equal(series.length, 1, `one series for three events of one rule: ${JSON.stringify(series)}`);
      assert.deepEqual(series[0].labels, labels);
      assert.equal(series[0].value - baseline('falcosecurity_falcosidekick_falco_events_total', labels), 3);
      assert.ok(!down.text.includes('payments-prod') && !down.text.includes('checkout-7f9c8d6b5'), 'no namespace or pod name anywhere in /metrics');

      // The output comes back: the backlog drains, deliveries and latencies are counted.
      flaky.script([{ status: 200 }]);
      const up = await waitForMetrics(r.url, 'the deliveries after recovery', (m) => {
        assert.equal(m.value('falco_router_events_delivered_total', { output: 'webhook', type: 'webhook' }), 3);
        assert.equal(m.value('falco_router_delivery_latency_seconds_count', { output: 'webhook', type: 'webhook' }), 3);
        assert.equal(m.value('falco_router_delivery_attempts_total', { output: 'webhook', type: 'webhook', outcome: 'ok' }), 3);
        assert.equal(m.value('falcosecurity_falcosidekick_outputs_total', { destination: 'webhook', status: 'ok' }), 3);
        assert.equal(m.value('falco_router_queue_depth', { output: 'webhook', type: 'webhook' }), 0);
      });
      assert.equal(up.value('falco_router_events_delivered_total', { output: 'dl' }), 0);
      assert.equal(up.value('falco_router_dead_letters', { output: 'dl', type: 'webhook' }), 3);
      assert.equal(up.value('falco_router_dead_letters', { output: 'webhook', type: 'webhook' }), 0);
      // The latency histogram's +Inf bucket agrees with its count.
      assert.equal(up.value('falco_router_delivery_latency_seconds_bucket', { output: 'webhook', le: '+Inf' }), 3);
      assert.deepEqual(flaky.delivered().map(markerOf).sort(), [1, 2, 3]);
      assert.equal(broken.delivered().length, 0);
    } finally {
      await closeAll(r, flaky, broken, redis);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// 2. Readiness

interface ReadyBody {
  ready: boolean;
  queue: { driver: string; reachable: boolean };
  outputs: Array<{ name: string; type: string; lastSuccessAt?: string; lastError?: { at: string; reason: string; message: string }; backlog: number | null; deadLetters: number | null }>;
}

/** Polls /ready until it answers `status`; returns that answer's body. */
async function readyWhen(url: string, status: number, timeoutMs: number): Promise<ReadyBody> {
  let body: ReadyBody | undefined;
  await waitFor(
    async () => {
      const res = await ready(url);
      body = res.body;
      return res.status === status;
    },
    timeoutMs,
    `/ready to answer ${status}`,
  );
  return body!;
}

async function ready(url: string): Promise<{ status: number; body: ReadyBody }> {
  const res = await fetch(`${url}/ready`);
  return { status: res.status, body: (await res.json()) as ReadyBody };
}

test('readiness: 503 with reachable:false while Redis is stopped, 200 once it is back, with per-output state', async () => {
  const redis = await startRedis();
  const okSink = await startHttpSink();
  const downSink = await startHttpSink([{ status: 503 }]);
  let r: TestRouter | undefined;
  try {
    // `down` fails once per event, then waits a long backoff: its backlog stays put during the test.
    r = await startTestRouter(`${redisQueueYaml(redis, 'ready')}
outputs:
  - { name: up, type: webhook, address: "${okSink.url}" }
  - { name: down, type: webhook, address: "${downSink.url}", delivery: { attempts: 1000, initialdelay: 60s, maxdelay: 60s } }
`);
    const out = (b: ReadyBody, name: string) => {
      const o = b.outputs.find((x) => x.name === name);
      assert.ok(o, `output ${name} in ${JSON.stringify(b)}`);
      return o;
    };
    assert.equal((await r.post(falcoEvent(1))).status, 200);
    assert.equal((await r.post(falcoEvent(2))).status, 200);
    await waitFor(() => okSink.delivered().length === 2 && downSink.requests.length === 2, 10_000, 'one delivery and one failure per event');

    let body: ReadyBody | undefined;
    await waitFor(
      async () => {
        const res = await ready(r!.url);
        body = res.body;
        const up = body.outputs.find((o) => o.name === 'up');
        const down = body.outputs.find((o) => o.name === 'down');
        return res.status === 200 && up?.lastSuccessAt !== undefined && up.backlog === 0 && down?.lastError !== undefined && down.backlog === 2;
      },
      10_000,
      'the per-output state while everything is up',
    );
    assert.equal(body!.ready, true);
    assert.deepEqual(body!.queue, { driver: 'redis', reachable: true });
    const up1 = out(body!, 'up');
    assert.equal(up1.type, 'webhook');
    assert.ok(!Number.isNaN(Date.parse(up1.lastSuccessAt!)), 'lastSuccessAt is a timestamp');
    assert.equal(up1.lastError, undefined);
    assert.equal(up1.deadLetters, 0);
    const down1 = out(body!, 'down');
    assert.equal(down1.lastSuccessAt, undefined);
    assert.equal(down1.lastError!.reason, 'serverError');
    assert.match(down1.lastError!.message, /503/);
    assert.ok(!down1.lastError!.message.includes(downSink.url), 'the webhook address is redacted in the state');
    assert.equal(down1.backlog, 2);

    await redis.stop(true);
    const downBody = await readyWhen(r.url, 503, 10_000);
    assert.equal(downBody.ready, false);
    assert.deepEqual(downBody.queue, { driver: 'redis', reachable: false });
    // Per-output state survives; the backlog cannot be read while Redis is away.
    assert.equal(out(downBody, 'up').lastSuccessAt, up1.lastSuccessAt);
    assert.equal(out(downBody, 'down').lastError!.reason, 'serverError');
    assert.equal(out(downBody, 'down').backlog, null);
    assert.equal((await fetch(`${r.url}/healthz`)).status, 200, 'liveness does not depend on Redis');
    assert.equal((await r.post(falcoEvent(3))).status, 503, 'nothing is acknowledged while Redis is away');

    await redis.start();
    const backBody = await readyWhen(r.url, 200, 15_000);
    assert.equal(backBody.ready, true);
    assert.deepEqual(backBody.queue, { driver: 'redis', reachable: true });
    assert.equal(out(backBody, 'up').lastSuccessAt, up1.lastSuccessAt);
    assert.equal(typeof out(backBody, 'up').backlog, 'number');
    // And it works again.
    await waitFor(async () => (await r!.post(falcoEvent(4))).status === 200, 15_000, 'ingest to accept again');
    await waitFor(() => okSink.delivered().map(markerOf).includes(4), 15_000, 'a delivery after Redis returned');
  } finally {
    await closeAll(r, okSink, downSink, redis);
  }
});

// ---------------------------------------------------------------------------------------------
// 3a. Reload in process

test('reload in process: an added output receives new events, a removed one stops, an unchanged one is left alone', async () => {
  const a = await startHttpSink();
  const b = await startHttpSink();
  const gone = await startHttpSink();
  let r: TestRouter | undefined;
  try {
    r = await startTestRouter(`outputs:
  - { name: a, type: webhook, address: "${a.url}" }
  - { name: gone, type: webhook, address: "${gone.url}" }
`);
    for (let i = 1; i <= 5; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
    await waitFor(() => a.delivered().length === 5 && gone.delivered().length === 5, 10_000, 'the first five at a and gone');
    const aWorker = r.workers.find((w) => w.instance.name === 'a');

    // `b` is listed first, so `a` moves from outputs[0] to outputs[1]: it is still the same output.
    const result = await reloadWith(r, `outputs:
  - { name: b, type: webhook, address: "${b.url}" }
  - { name: a, type: webhook, address: "${a.url}" }
`);
    assert.deepEqual(result.added, ['b']);
    assert.deepEqual(result.removed, ['gone']);
    assert.deepEqual(result.changed, [], 'moving an output in the list does not restart it');
    assert.equal(r.workers.find((w) => w.instance.name === 'a'), aWorker, 'the unchanged output keeps its worker');
    assert.deepEqual(r.workers.map((w) => w.instance.name).sort(), ['a', 'b']);

    for (let i = 6; i <= 10; i++) assert.equal((await r.post(falcoEvent(i))).status, 200);
    await waitFor(() => a.delivered().length === 10 && b.delivered().length === 5, 10_000, 'the next five at a and b');
    assert.deepEqual(a.delivered().map(markerOf).sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(b.delivered().map(markerOf).sort((x, y) => x - y), [6, 7, 8, 9, 10], 'the added output gets only what came after the reload');
    // The removed output has no worker and no route: nothing more is queued for it or sent to it.
    assert.equal(gone.requests.length, 5);
    assert.equal(await r.queue.depth('gone'), 0);
    const m = await scrape(r.url);
    assert.ok(!m.has('falco_router_queue_depth', { output: 'gone' }), 'no gauge for a removed output');
    assert.ok(m.has('falco_router_queue_depth', { output: 'b' }));
    await waitForMetrics(r.url, 'deliveries of the added output', (s) => assert.equal(s.value('falco_router_events_delivered_total', { output: 'b' }), 5));
  } finally {
    await closeAll(r, a, b, gone);
  }
});

test('reload in process: settings that need a restart are named and left as they are; the rest applies', async () => {
  const sink = await startHttpSink();
  const r = await startTestRouter(`outputs:\n  - { name: a, type: webhook, address: "${sink.url}" }\n`);
  try {
    const file = join(tempDir(), 'next.yaml');
    writeFileSync(file, `bodylimit: 2048\noutputs:\n  - { name: a, type: webhook, address: "${sink.url}" }\n  - { name: b, type: webhook, address: "${sink.url}" }\n`);
    const result = await r.reload(loadConfig({ file, env: { LISTENADDRESS: '127.0.0.1', LISTENPORT: '1' }, types: outputTypes }));
    assert.deepEqual(result.restartNeeded.sort(), ['bodylimit', 'listenport']);
    assert.deepEqual(result.added, ['b']);
    // Still listening where it was, with the old body limit.
    assert.equal((await r.post(falcoEvent(1))).status, 200);
    assert.equal((await r.post(`{"pad":"${'x'.repeat(4000)}",${falcoEvent(2).slice(1)}`)).status, 200);
    await waitFor(() => sink.delivered().length === 4, 10_000, 'both events at a and b');
  } finally {
    await closeAll(r, sink);
  }
});

for (const driver of ['memory', 'redis'] as const) {
  test(`reload in process: a changed address gets the events queued, retrying or in flight at the old one (${driver} queue)`, async () => {
    const redis = driver === 'redis' ? await startRedis() : undefined;
    // `slow` never answers within the test; `down` answers 503.
    const slowOld = await startHttpSink([{ status: 200, delayMs: 20_000 }]);
    const downOld = await startHttpSink([{ status: 503 }]);
    const slowNew = await startHttpSink();
    const downNew = await startHttpSink();
    let r: TestRouter | undefined;
    const queue = redis ? redisQueueYaml(redis, 'swap') : 'queue: { driver: memory }';
    const yaml = (slow: string, down: string) => `${queue}
outputs:
  - { name: slow, type: webhook, address: "${slow}", delivery: { concurrency: 2, timeout: 60s, attempts: 1000, initialdelay: 20ms, maxdelay: 50ms } }
  - { name: down, type: webhook, address: "${down}", delivery: { attempts: 1000, initialdelay: 20ms, maxdelay: 50ms } }
`;
    try {
      r = await startTestRouter(yaml(slowOld.url, downOld.url));
      const acked: number[] = [];
      for (let i = 0; i < 20; i++) if ((await r.post(falcoEvent(i))).status === 200) acked.push(i);
      assert.equal(acked.length, 20);
      await waitFor(() => slowOld.requests.length === 2 && downOld.requests.length >= 4, 10_000, 'sends in flight at slow and retries at down');

      // The grace period is shorter than the slow sink's delay: its in-flight sends are handed back.
      // Meanwhile more events arrive, while the reload runs.
      const router = r;
      const during = (async () => {
        for (let i = 20; i < 30; i++) if ((await router.post(falcoEvent(i))).status === 200) acked.push(i);
      })();
      const result = await reloadWith(r, yaml(slowNew.url, downNew.url), { SHUTDOWN_GRACEPERIOD: '300ms' });
      // The old workers are stopped when reload() returns: the old addresses get nothing more.
      const oldRequests = { slow: slowOld.requests.length, down: downOld.requests.length };
      assert.deepEqual([...result.changed].sort(), ['down', 'slow']);
      assert.deepEqual(result.added, []);
      assert.deepEqual(result.removed, []);
      await during;
      for (let i = 30; i < 40; i++) if ((await r.post(falcoEvent(i))).status === 200) acked.push(i);
      assert.equal(acked.length, 40, 'every event acknowledged, before, during and after the reload');

      // Every acknowledged event reaches the old or the new address of each output. The old slow
      // sink never answered and the old down sink only answered 503, so here all go to the new ones.
      const got = (s: HttpSink) => new Set(s.delivered().map(markerOf));
      await waitFor(() => acked.every((m) => got(slowNew).has(m) && got(downNew).has(m)), 20_000, 'every acknowledged event at both new addresses');
      assert.equal(downOld.delivered().length, 0);
      await waitForMetrics(r.url, 'empty queues after the swap', (m) => {
        assert.equal(m.value('falco_router_queue_depth', { output: 'slow' }), 0);
        assert.equal(m.value('falco_router_queue_depth', { output: 'down' }), 0);
        assert.equal(m.value('falco_router_dead_letters', { output: 'slow' }) + m.value('falco_router_dead_letters', { output: 'down' }), 0);
      });
      assert.deepEqual({ slow: slowOld.requests.length, down: downOld.requests.length }, oldRequests, 'the old addresses got nothing after the reload');
    } finally {
      await closeAll(r, slowOld, downOld, slowNew, downNew, redis);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// 3b. Reload of a real process: SIGHUP and file changes

test('a real process reloads on SIGHUP and on a file change, refuses a bad file and keeps running', async () => {
  const dir = tempDir();
  const file = join(dir, 'config.yaml');
  const out = (n: string) => join(dir, `${n}.ndjson`);
  const outputs = (...names: string[]) => `outputs:\n${names.map((n) => `  - { name: ${n}, type: file, path: ${out(n)} }\n`).join('')}`;
  writeFileSync(file, outputs('a'));
  const p = await spawnRouter(file);

  /** The reload log lines so far: why (SIGHUP or file changed), applied or refused. */
  interface ReloadLine {
    why: string;
    ok: boolean;
    level: number;
    problems?: string[];
    added?: string[];
    removed?: string[];
    changed?: string[];
  }
  const reloadLines = (): ReloadLine[] =>
    p.logs().flatMap((l) => {
      const m = /^config reload(ed)? \((SIGHUP|file changed)\)/.exec(String(l.msg));
      return m ? [{ ...(l as object), why: m[2], ok: m[1] === 'ed', level: l.level as number }] : [];
    });
  /** The counter must agree with the log: one count per reload, applied or refused. */
  const countersMatchLog = async () => {
    const lines = reloadLines();
    const want = { ok: lines.filter((l) => l.ok).length, error: lines.filter((l) => !l.ok).length };
    await waitForMetrics(p.url, `reload counters ${JSON.stringify(want)}`, (m) => {
      assert.deepEqual({ ok: m.value('falco_router_config_reloads_total', { result: 'ok' }), error: m.value('falco_router_config_reloads_total', { result: 'error' }) }, want);
    });
    return want;
  };
  /** Waits for a new reload line after the first `seen`, triggered by `why`. */
  const nextReload = async (seen: number, why: string): Promise<ReloadLine & { index: number }> => {
    await waitFor(() => reloadLines().slice(seen).some((l) => l.why === why), 10_000, `a reload (${why})`);
    const index = seen + reloadLines().slice(seen).findIndex((l) => l.why === why);
    return { ...reloadLines()[index], index };
  };
  // The watcher waits for changes to settle (300 ms): a reload it should not do would show by then.
  const settle = () => delay(1000);
  const post = async (n: number) => assert.equal((await fetch(p.url, { method: 'POST', body: falcoEvent(n) })).status, 200);
  try {
    await countersMatchLog();
    assert.equal(reloadLines().length, 0);
    await post(1);
    await waitFor(() => markersIn(out('a')).length === 1, 10_000, 'event 1 in a');

    // A bad file, then SIGHUP: refused (logged as an error naming the key), counted, old config kept.
    let seen = reloadLines().length;
    writeFileSync(file, `${outputs('a')}  - { name: b, type: webhook, address: "not a url" }\n`);
    p.child.kill('SIGHUP');
    const refused = await nextReload(seen, 'SIGHUP');
    assert.equal(refused.ok, false);
    assert.equal(refused.level, 50);
    assert.ok(p.output().includes('config reload (SIGHUP) refused, the running config stays'));
    assert.deepEqual(refused.problems, ['outputs[1].address: is not an http(s) URL']);
    await settle();
    // The file watcher saw the same edit: it must not reload (and refuse, and count) what SIGHUP already read.
    assert.deepEqual(reloadLines().slice(refused.index + 1), [], 'no second reload of the same file');
    assert.ok((await countersMatchLog()).error >= 1);
    assert.equal(p.child.exitCode, null, 'still running');
    await post(2);
    await waitFor(() => markersIn(out('a')).length === 2, 10_000, 'event 2 in a, with the old config');
    assert.ok(!existsSync(out('b')));

    // A good file, then SIGHUP: output b is added.
    seen = reloadLines().length;
    writeFileSync(file, outputs('a', 'b'));
    p.child.kill('SIGHUP');
    const applied = await nextReload(seen, 'SIGHUP');
    assert.equal(applied.ok, true);
    assert.deepEqual([applied.added, applied.removed, applied.changed], [['b'], [], []]);
    await settle();
    assert.deepEqual(reloadLines().slice(applied.index + 1), [], 'no second reload of the same file');
    assert.ok((await countersMatchLog()).ok >= 1);
    await post(3);
    await waitFor(() => markersIn(out('a')).length === 3 && markersIn(out('b')).length === 1, 10_000, 'event 3 in a and b');
    assert.deepEqual(markersIn(out('b')), [3]);

    // No signal: the file watcher sees a bad file and refuses it…
    seen = reloadLines().length;
    writeFileSync(file, `${outputs('a', 'b')}  - { name: c, type: file }\n`);
    const watchedBad = await nextReload(seen, 'file changed');
    assert.equal(watchedBad.ok, false);
    assert.deepEqual(watchedBad.problems, ['outputs[2].path: is required']);
    await countersMatchLog();
    await post(4);
    await waitFor(() => markersIn(out('a')).length === 4 && markersIn(out('b')).length === 2, 10_000, 'event 4 in a and b, with the running config');

    // …and applies a good one: c replaces a.
    seen = reloadLines().length;
    writeFileSync(file, outputs('b', 'c'));
    const watchedGood = await nextReload(seen, 'file changed');
    assert.equal(watchedGood.ok, true);
    assert.deepEqual([watchedGood.added, watchedGood.removed, watchedGood.changed], [['c'], ['a'], []]);
    const final = await countersMatchLog();
    assert.ok(final.ok >= 2 && final.error >= 2);
    await post(5);
    await waitFor(() => markersIn(out('b')).length === 3 && markersIn(out('c')).length === 1, 10_000, 'event 5 in b and c');
    assert.deepEqual(markersIn(out('c')), [5]);
    assert.deepEqual(markersIn(out('a')), [1, 2, 3, 4], 'the removed output gets nothing more');
  } finally {
    assert.equal(await p.stop(), 0, 'SIGTERM stops it with exit code 0');
  }
});

// ---------------------------------------------------------------------------------------------
// 4. TLS and mutual TLS on ingest

let certs: TestCerts;
before(() => {
  certs = makeCerts();
});

/** POSTs over TLS, trusting the test CA, presenting the named client certificate if any. */
async function postTls(url: string, body: string, client?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const connect: Record<string, unknown> = { ca: certs.pem('ca.crt') };
  if (client) Object.assign(connect, { cert: certs.pem(`${client}.crt`), key: certs.pem(`${client}.key`) });
  const agent = new Agent({ connect });
  try {
    const res = await request(url, { method: 'POST', body, headers, dispatcher: agent });
    return { status: res.statusCode, body: await res.body.text() };
  } finally {
    await agent.destroy();
  }
}

/** The connection ended by TLS (an alert, or the server closing it), not an HTTP answer. */
function tlsRefusal(err: unknown): boolean {
  const texts: string[] = [];
  for (let e = err as { message?: string; code?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) texts.push(`${e.code ?? ''} ${e.message ?? ''}`);
  return /UND_ERR_SOCKET|other side closed|ERR_SSL_|alert|ECONNRESET|EPIPE/i.test(texts.join(' | '));
}

/**
 * A raw TLS connection that sends one HTTP request: what came back (HTTP bytes, or nothing) and
 * the TLS error if any. With TLS 1.2 the server refuses during the handshake; with TLS 1.3 the
 * client learns it right after (certificate required alert, or the server closing the socket).
 */
function tlsProbe(port: number, client: string | undefined, maxVersion: 'TLSv1.2' | 'TLSv1.3'): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    const opts: ConnectionOptions = { host: '127.0.0.1', port, ca: certs.pem('ca.crt'), maxVersion };
    if (client) Object.assign(opts, { cert: certs.pem(`${client}.crt`), key: certs.pem(`${client}.key`) });
    let data = '';
    let error: string | undefined;
    const socket = tlsConnect(opts, () => socket.write('GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'));
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => resolve({ data, error }));
  });
}

async function tlsRouter(outFile: string, extra = '') {
  const notlsport = await freePort();
  const r = await startTestRouter(`tlsserver:
  deploy: true
  mutualtls: true
  certfile: ${certs.path('server.crt')}
  keyfile: ${certs.path('server.key')}
  cacertfile: ${certs.path('ca.crt')}
  notlsport: ${notlsport}
  notlspaths: ['/healthz', '/metrics']
${extra}
outputs:
  - { name: file, type: file, path: ${outFile} }
`);
  return { r, tlsUrl: r.url.replace(/^http:/, 'https:'), notlsport };
}

test('mutual TLS ingest: a valid client certificate is accepted, none or another CA’s is refused; probes on the plain port', async () => {
  const outFile = join(tempDir(), 'events.ndjson');
  const { r, tlsUrl, notlsport } = await tlsRouter(outFile);
  try {
    assert.ok(tlsUrl.startsWith('https://127.0.0.1:'));
    const ok = await postTls(`${tlsUrl}/`, falcoEvent(1), 'client');
    assert.equal(ok.status, 200);
    assert.equal(ok.body, '');

    await assert.rejects(postTls(`${tlsUrl}/`, falcoEvent(2)), tlsRefusal, 'no client certificate');
    await assert.rejects(postTls(`${tlsUrl}/`, falcoEvent(3), 'stranger'), tlsRefusal, 'a certificate from another CA');
    // The same at the TLS level, for both protocol versions: no HTTP byte ever comes back.
    const port = Number(new URL(tlsUrl).port);
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      assert.match((await tlsProbe(port, 'client', version)).data, /^HTTP\/1\.1 /, `${version}: a valid client gets an HTTP answer`);
      for (const client of [undefined, 'stranger']) {
        const refused = await tlsProbe(port, client, version);
        assert.equal(refused.data, '', `${version}, ${client ?? 'no certificate'}: no HTTP answer`);
      }
    }
    const noCert13 = await tlsProbe(port, undefined, 'TLSv1.3');
    assert.equal(noCert13.error, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    const noCert12 = await tlsProbe(port, undefined, 'TLSv1.2');
    assert.equal(noCert12.error, 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE');
    // Plain HTTP on the TLS port does not ingest either.
    const plainOnTls = await fetch(`${r.url.replace(/^https:/, 'http:')}/`, { method: 'POST', body: falcoEvent(4) }).then((res) => res.status, () => 'refused');
    assert.notEqual(plainOnTls, 200);

    await waitFor(() => markersIn(outFile).length >= 1, 5000, 'the accepted event stored');
    await delay(200);
    assert.deepEqual(markersIn(outFile), [1], 'only the event of the client with a valid certificate');

    // The plain side serves only the notlspaths.
    assert.equal(r.plainUrl, `http://127.0.0.1:${notlsport}`);
    const health = await fetch(`${r.plainUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), '{"status": "ok"}');
    const metrics = await scrape(r.plainUrl!);
    assert.equal(metrics.value('falcosecurity_falcosidekick_inputs_total', { status: 'accepted' }), 1);
    const plainIngest = await fetch(`${r.plainUrl}/`, { method: 'POST', body: falcoEvent(5) });
    assert.equal(plainIngest.status, 404, 'ingest is not served on the plain port');
    assert.equal((await fetch(`${r.plainUrl}/test`, { method: 'POST' })).status, 404);
    assert.equal((await fetch(`${r.plainUrl}/api/v1/deadletters/file`)).status, 404);
    await delay(200);
    assert.deepEqual(markersIn(outFile), [1]);
  } finally {
    await r.stop();
  }
});

test('mutual TLS with a bearer token: the client certificate stands in for the token (Falco cannot send headers), except for the silence API', async () => {
  const outFile = join(tempDir(), 'events.ndjson');
  const { r, tlsUrl } = await tlsRouter(outFile, 'auth: { token: "tls-and-token" }');
  try {
    assert.equal((await postTls(`${tlsUrl}/`, falcoEvent(1), 'client')).status, 200);
    assert.equal((await postTls(`${tlsUrl}/`, falcoEvent(2), 'client', { authorization: 'Bearer tls-and-token' })).status, 200);
    await assert.rejects(postTls(`${tlsUrl}/`, falcoEvent(3), undefined, { authorization: 'Bearer tls-and-token' }), tlsRefusal, 'the token does not replace the certificate');
    await waitFor(() => markersIn(outFile).length === 2, 5000, 'the two events');
    assert.deepEqual(markersIn(outFile).sort(), [1, 2]);
    // Every sensor holds a certificate: it opens the dead-letter API, but silencing needs the operator's token.
    assert.deepEqual(await postTls(`${tlsUrl}/api/v1/deadletters/file/requeue`, '', 'client'), { status: 200, body: '{"output":"file","requeued":0}' });
    const silence = JSON.stringify({ matchers: ['rule=~".+"'], duration: '365d', comment: 'quiet', createdBy: 'sensor' });
    assert.equal((await postTls(`${tlsUrl}/api/v1/silences`, silence, 'client')).status, 401);
    assert.deepEqual(await r.silences.list(), []);
    assert.equal((await postTls(`${tlsUrl}/api/v1/silences`, silence, 'client', { authorization: 'Bearer tls-and-token' })).status, 201);
  } finally {
    await r.stop();
  }
});

test('TLS without mutual TLS: any client that trusts the server certificate may send', async () => {
  const outFile = join(tempDir(), 'events.ndjson');
  const r = await startTestRouter(`tlsserver: { deploy: true, certfile: ${certs.path('server.crt')}, keyfile: ${certs.path('server.key')} }
outputs:
  - { name: file, type: file, path: ${outFile} }
`);
  try {
    assert.equal(r.plainUrl, undefined, 'no plain server without notlspaths');
    assert.ok(r.logs.some((l) => l.includes('every path, /healthz included, is served over TLS only')));
    const tlsUrl = r.url.replace(/^http:/, 'https:');
    assert.equal((await postTls(`${tlsUrl}/`, falcoEvent(1))).status, 200);
    await waitFor(() => markersIn(outFile).length === 1, 5000, 'the event');
  } finally {
    await r.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// 5. Bearer token

test('bearer token (auth.token): ingest, /test and the dead-letter API need it; probes never do', async () => {
  const outFile = join(tempDir(), 'events.ndjson');
  const token = 'tok-3f1a9c';
  const r = await startTestRouter(`auth: { token: "${token}" }
testendpoint: token
outputs:
  - { name: file, type: file, path: ${outFile} }
`);
  const bearer = { authorization: `Bearer ${token}` };
  try {
    const denied = await r.post(falcoEvent(1));
    assert.equal(denied.status, 401);
    assert.match(denied.body, /Authorization: Bearer/);
    assert.equal((await fetch(r.url, { method: 'POST', body: falcoEvent(1) })).headers.get('www-authenticate'), 'Bearer');
    assert.equal((await r.post(falcoEvent(1), { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await r.post(falcoEvent(1), { headers: { authorization: token } })).status, 401, 'the scheme is required');
    assert.equal((await r.post(falcoEvent(1), { headers: { authorization: `Bearer ${token}x` } })).status, 401);
    assert.equal((await r.post(falcoEvent(1), { path: '/any/other/path' })).status, 401, 'every ingest path');

    assert.equal((await r.post(falcoEvent(2), { headers: bearer })).status, 200);

    for (const path of ['/healthz', '/ping', '/ready', '/metrics']) assert.equal((await fetch(`${r.url}${path}`)).status, 200, `${path} without a token`);
    assert.equal((await fetch(`${r.url}/ping`, { method: 'POST' })).status, 200);

    assert.equal((await r.post('', { path: '/test' })).status, 401, 'testendpoint: token');
    assert.equal((await r.post('', { path: '/test', headers: bearer })).status, 200);

    // The dead-letter API, however the path is spelled.
    for (const path of ['/api/v1/deadletters/file', '/%61pi/v1/deadletters/file', '/api/v1/deadletters/fil%65']) {
      assert.equal((await fetch(`${r.url}${path}`)).status, 401, `GET ${path} without a token`);
    }
    assert.equal((await fetch(`${r.url}/%61pi/v1/deadletters/file/requeue`, { method: 'POST' })).status, 401);
    assert.equal((await fetch(`${r.url}/api/v1/deadletters/file/requeue`, { method: 'POST' })).status, 401);
    const list = await fetch(`${r.url}/api/v1/deadletters/file`, { headers: bearer });
    assert.equal(list.status, 200);
    assert.deepEqual(await list.json(), { output: 'file', count: 0, items: [] });
    const requeue = await fetch(`${r.url}/api/v1/deadletters/file/requeue`, { method: 'POST', headers: bearer });
    assert.deepEqual(await requeue.json(), { output: 'file', requeued: 0 });

    // Only the two authorised events were stored.
    await waitFor(() => ndjsonLines(outFile).length === 2, 5000, 'the authorised events');
    await delay(200);
    const stored = ndjsonLines(outFile);
    assert.equal(stored.length, 2);
    assert.equal(markerOf(stored.find((l) => l.includes('"test.n"'))!), 2);
    assert.ok(stored.some((l) => l.includes('"rule":"Test rule"')));
    const m = await scrape(r.url);
    assert.equal(m.value('falcosecurity_falcosidekick_inputs_total', { status: 'accepted' }), 2);
    assert.equal(m.value('falco_router_events_rejected_total', { reason: 'unauthorized' }), 12, 'each refusal above is counted');
    assert.ok(!r.logs.some((l) => l.includes(token)), 'the token is never logged');
  } finally {
    await r.stop();
  }
});

test('bearer token from auth.tokenfile (re-read on reload) and from AUTH_TOKEN; testendpoint: disabled', async () => {
  const outFile = join(tempDir(), 'events.ndjson');
  const tokenFile = join(tempDir(), 'token');
  writeFileSync(tokenFile, 'from-file-1\n');
  const yaml = `auth: { tokenfile: ${tokenFile} }
testendpoint: disabled
outputs:
  - { name: file, type: file, path: ${outFile} }
`;
  const r = await startTestRouter(yaml);
  try {
    assert.equal((await r.post(falcoEvent(1))).status, 401);
    assert.equal((await r.post(falcoEvent(2), { headers: { authorization: 'Bearer from-file-1' } })).status, 200, 'the trailing newline is not part of the token');
    assert.equal((await r.post('', { path: '/test' })).status, 404);
    assert.equal((await r.post('', { path: '/test', headers: { authorization: 'Bearer from-file-1' } })).status, 404, 'disabled even with the token');

    // A rotated Secret takes effect on reload.
    writeFileSync(tokenFile, 'from-file-2\n');
    await reloadWith(r, yaml);
    assert.equal((await r.post(falcoEvent(3), { headers: { authorization: 'Bearer from-file-1' } })).status, 401);
    assert.equal((await r.post(falcoEvent(4), { headers: { authorization: 'Bearer from-file-2' } })).status, 200);
    await waitFor(() => markersIn(outFile).length === 2, 5000, 'the authorised events');
    assert.deepEqual(markersIn(outFile), [2, 4]);

    // An unreadable token file is refused by the reload; the running token stays.
    await assert.rejects(reloadWith(r, yaml.replace(tokenFile, join(tempDir(), 'missing'))), /auth\.tokenfile: cannot read .*missing: ENOENT/);
    assert.equal((await r.post(falcoEvent(5), { headers: { authorization: 'Bearer from-file-2' } })).status, 200);
    // An empty one too: read as "no token", it would open POST / to anyone.
    const empty = join(tempDir(), 'empty');
    writeFileSync(empty, '\n');
    await assert.rejects(reloadWith(r, yaml.replace(tokenFile, empty)), /auth\.tokenfile: .*empty is empty; it must hold the token/);
    await assert.rejects(reloadWith(r, `auth: { apitokenfile: ${empty} }\n`), /auth\.apitokenfile: .*empty is empty/);
    assert.equal((await r.post(falcoEvent(6))).status, 401, 'the running token stays');
  } finally {
    await r.stop();
  }

  const e = await startTestRouter(`outputs:\n  - { name: file, type: file, path: ${join(tempDir(), 'env.ndjson')} }\n`, { AUTH_TOKEN: 'from-env' });
  try {
    assert.equal((await e.post(falcoEvent(1))).status, 401);
    assert.equal((await e.post(falcoEvent(1), { headers: { authorization: 'Bearer from-env' } })).status, 200);
    assert.equal((await e.post('', { path: '/test' })).status, 200, 'testendpoint defaults to enabled, as in falcosidekick');
  } finally {
    await e.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// 6. check-config

test('check-config prints the output instances with secrets masked and exits 0; a bad file exits 1 naming the keys', async () => {
  const dir = tempDir();
  const good = join(dir, 'good.yaml');
  writeFileSync(
    good,
    `auth: { token: "never-print-this-token" }
outputs:
  - name: hook
    type: webhook
    address: "https://hooks.example.com/services/T000/B000/XXXXSECRETPATH"
    customheaders: { Authorization: "Bearer header-secret-123" }
    minimumpriority: error
  - { name: archive, type: file, path: ${join(dir, 'archive.ndjson')} }
slack:
  webhookurl: "https://hooks.slack.com/services/T1/B2/slacksecret456"
`,
  );
  const bad = join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    `listenport: 99999
queue: { driver: postgres }
outputs:
  - { name: hook, type: webhook, address: "not a url", minimumpriority: warn, adress: "typo" }
  - { name: archive, type: file }
  - { name: x, type: nosuch }
`,
  );
  // Four processes at once: each takes about a second to start.
  const [ok, env, ko, missing] = await Promise.all([
    runCli(['check-config', '-c', good]),
    runCli(['check-config', '-c', good], { WEBHOOK_ADDRESS: 'http://user:pw@env-hook.example/path/secret-env-path' }),
    runCli(['check-config', '-c', bad]),
    runCli(['check-config', '-c', join(dir, 'nope.yaml')]),
  ]);

  assert.equal(ok.code, 0, ok.stderr);
  const shown = JSON.parse(ok.stdout) as { queue: string; outputs: Array<{ name: string; type: string; minimumpriority: string; settings: Record<string, unknown> }> };
  assert.equal(shown.queue, 'memory');
  assert.deepEqual(
    shown.outputs.map((o) => [o.name, o.type, o.minimumpriority]),
    [
      ['hook', 'webhook', 'Error'],
      ['archive', 'file', ''],
      ['slack', 'slack', ''],
    ],
  );
  const byName = Object.fromEntries(shown.outputs.map((o) => [o.name, o.settings]));
  assert.equal(byName.hook.address, '***');
  assert.equal(byName.hook.customheaders, '***');
  assert.equal(byName.slack.webhookurl, '***');
  assert.equal(byName.archive.path, join(dir, 'archive.ndjson'), 'settings that are not secret are shown');
  for (const secret of ['XXXXSECRETPATH', 'hooks.example.com', 'header-secret-123', 'slacksecret456', 'never-print-this-token']) {
    assert.ok(!ok.stdout.includes(secret) && !ok.stderr.includes(secret), `${secret} is not printed`);
  }

  // Environment variables are part of the effective config, masked the same way.
  assert.equal(env.code, 0, env.stderr);
  const envShown = JSON.parse(env.stdout) as { outputs: Array<{ name: string; settings: Record<string, unknown> }> };
  assert.equal(envShown.outputs.find((o) => o.name === 'webhook')?.settings.address, '***');
  assert.ok(!env.stdout.includes('secret-env-path') && !env.stdout.includes('pw@'));

  // A bad file: exit 1, every problem named by its key path, nothing on stdout.
  assert.equal(ko.code, 1);
  assert.equal(ko.stdout, '', 'no config printed for a bad file');
  for (const re of [
    /^invalid configuration:/,
    /listenport: must be at most 65535/,
    /queue\.driver: must be memory or redis/,
    /outputs\[0\]\.address: is not an http\(s\) URL/,
    /outputs\[0\]\.minimumpriority: "warn" is not a priority/,
    /outputs\[0\]: unknown setting "adress"/,
    /outputs\[1\]\.path: is required/,
    /outputs\[2\]\.type: "nosuch" is not an output type/,
  ]) {
    assert.match(ko.stderr, re);
  }

  // A file that is not there.
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot read config file .*nope\.yaml/);
});
