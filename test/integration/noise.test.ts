/**
 * Dedup and throttle through the whole router, on both queue drivers, with real processes where a
 * crash is part of the story. Every alert acknowledged must show up: sent one by one, or counted
 * in a summary; the file output (no noise control) still gets every alert.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestRouter, tempDir } from '../helpers/router.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { runCli, spawnRouter } from '../helpers/process.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor, delay } from '../helpers/wait.ts';
import { startFakeSlack } from '../../outputs/slack/fake.ts';
import { startHttpSink } from '../../outputs/sdk/testkit/http-sink.ts';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(() => redis.stop(true));

/** The same shell in the same container, again and again: only evt.time and proc.pid differ. */
function shell(n: number): string {
  return JSON.stringify({
    output: `15:15:03.434319636: Notice A shell was spawned in a container (user=root pod=web-1 n=${n})`,
    priority: 'Notice',
    rule: 'Terminal shell in container',
    time: new Date(Date.UTC(2025, 3, 2, 15, 15, 3) + n).toISOString(),
    source: 'syscall',
    hostname: 'node-1',
    output_fields: { 'evt.time': 0, 'k8s.ns.name': 'prod', 'k8s.pod.name': 'web-1', 'proc.cmdline': 'bash -i', 'proc.pid': 4000 + n, 'user.name': 'root' },
  }).replace('"evt.time":0', `"evt.time":${1743606903434319636n + BigInt(n)}`);
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
const queueYaml = (driver: 'memory' | 'redis') =>
  driver === 'memory' ? 'queue: { driver: memory }' : `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "noise-${randomUUID().slice(0, 8)}", lockduration: 2s, stalledinterval: 1s } }`;

for (const driver of ['memory', 'redis'] as const) {
  describe(`${driver} driver`, () => {
    test('1,000 identical alerts reach a deduped Slack as one message and one follow-up with the exact count; the file gets all 1,000', async () => {
      const slack = await startFakeSlack();
      const file = join(tempDir(), 'all.ndjson');
      const r = await startTestRouter(`${queueYaml(driver)}
outputs:
  - { name: oncall, type: slack, webhookurl: "${slack.url}", dedup: { window: 4s }, delivery: { ratelimit: 0 } }
  - { name: archive, type: file, path: "${file}" }
`);
      try {
        // 50 at a time, as many Falco nodes would: the whole burst lands well inside the window.
        for (let i = 0; i < 1000; i += 50) {
          const statuses = await Promise.all(Array.from({ length: 50 }, (_, k) => r.post(shell(i + k)).then((x) => x.status)));
          assert.ok(statuses.every((st) => st === 200));
        }
        await waitFor(() => lines(file).length === 1000, 10_000, 'the file gets every alert');
        await waitFor(() => slack.messages().length >= 2, 15_000, 'the follow-up after the window');
        await delay(300);
        const messages = slack.messages();
        assert.equal(messages.length, 2, JSON.stringify(messages.map((m) => m.text ?? m.attachments?.[0]?.text)));
        assert.match(messages[0].attachments![0].text!, /A shell was spawned in a container/);
        assert.doesNotMatch(messages[0].text ?? '', /Noise control/);
        assert.match(messages[1].text!, /^Noise control: 999 alerts held back as duplicates \(dedup\)$/);
        assert.match(messages[1].attachments![0].text!, /^and 999 more identical alerts \(rule Terminal shell in container, hostname=node-1\), 15:15 UTC$/);
        assert.equal(await r.metric('falco_router_events_filtered_total', { output: 'oncall', reason: 'dedup' }), 999);
        assert.equal(await r.metric('falco_router_events_delivered_total', { output: 'oncall' }), 1);
      } finally {
        await r.stop();
        await slack.close();
      }
    });

    test('throttle: max alerts per key one by one, then one summary per key at the end of the window, as an alert for a webhook', async () => {
      const sink = await startHttpSink();
      const r = await startTestRouter(`${queueYaml(driver)}
outputs:
  - { name: siem, type: webhook, address: "${sink.url}", throttle: { window: 2s, max: 3, key: [rule, k8s.ns.name] } }
`);
      try {
        const alert = (n: number, ns: string) => shell(n).replace('"k8s.ns.name":"prod"', `"k8s.ns.name":"${ns}"`);
        for (let i = 0; i < 20; i++) await r.post(alert(i, 'prod'));
        for (let i = 0; i < 5; i++) await r.post(alert(100 + i, 'dev'));
        await waitFor(() => sink.delivered().length >= 8, 15_000, '3 + 3 alerts and 2 summaries');
        await delay(300);
        const bodies = sink.delivered().map((b) => JSON.parse(b) as { rule: string; output_fields: Record<string, unknown> });
        const summaries = bodies.filter((b) => b.rule === 'Falco router summary');
        assert.equal(bodies.length - summaries.length, 6, 'three per namespace');
        assert.deepEqual(
          summaries.map((s) => [s.output_fields['summary.key.k8s.ns.name'], s.output_fields['summary.count'], s.output_fields['summary.reason']]).sort(),
          [
            ['dev', 2, 'throttle'],
            ['prod', 17, 'throttle'],
          ],
        );
      } finally {
        await r.stop();
        await sink.close();
      }
    });
  });
}

test('memory driver: a stop that ends before a summary could go out says how many held-back alerts were not summarised', async () => {
  // The first alert goes out; then the webhook fails, and the summary's retries outlast the grace period (1 s).
  const sink = await startHttpSink([{ status: 200 }, { status: 503 }]);
  const r = await startTestRouter(`queue: { driver: memory }
outputs:
  - { name: siem, type: webhook, address: "${sink.url}", dedup: { window: 1h }, delivery: { attempts: 10, initialdelay: 10s } }
`);
  try {
    for (let i = 0; i < 3; i++) assert.equal((await r.post(shell(i))).status, 200);
    await waitFor(() => sink.delivered().length === 1, 10_000, 'the first alert');
    await waitFor(async () => (await r.metric('falco_router_events_filtered_total', { output: 'siem', reason: 'dedup' })) === 2, 10_000, 'two held back');
  } finally {
    await r.stop();
    await sink.close();
  }
  const line = r.logs.map((l) => JSON.parse(l) as { msg: string; heldBack?: number }).find((l) => l.msg.includes('held-back'));
  assert.equal(line?.msg, 'stopped with 2 held-back alerts not summarised (memory queue is not durable)');
  assert.equal(line?.heldBack, 2);
});

test('two replicas on one Redis share the windows: one alert and one follow-up, not two', async () => {
  const slack = await startFakeSlack();
  const prefix = `pair-${randomUUID().slice(0, 8)}`;
  const yaml = `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "${prefix}" } }
outputs:
  - { name: oncall, type: slack, webhookurl: "${slack.url}", dedup: { window: 2s }, delivery: { ratelimit: 0 } }
`;
  const [a, b] = [await startTestRouter(yaml), await startTestRouter(yaml)];
  try {
    for (let i = 0; i < 100; i++) assert.equal((await (i % 2 ? a : b).post(shell(i))).status, 200);
    await waitFor(() => slack.messages().length >= 2, 15_000, 'the alert and its follow-up');
    await delay(1000);
    assert.equal(slack.messages().length, 2);
    assert.match(slack.messages()[1].attachments![0].text!, /^and 99 more identical alerts/);
  } finally {
    await a.stop();
    await b.stop();
    await slack.close();
  }
});

test('a router killed with SIGKILL inside a window loses no held-back count: the next one sends the follow-up with all of them', { timeout: 90_000 }, async () => {
  const sink = await startHttpSink([{ status: 200, delayMs: 2 }]);
  const file = join(tempDir(), 'config.yaml');
  writeFileSync(
    file,
    `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "kill-${randomUUID().slice(0, 8)}", lockduration: 2s, stalledinterval: 1s } }
outputs:
  - { name: siem, type: webhook, address: "${sink.url}", dedup: { window: 8s } }
`,
  );
  const first = await spawnRouter(file);
  let acked = 0;
  const post = async (url: string, n: number) => {
    const res = await fetch(url, { method: 'POST', body: shell(n) }).catch(() => undefined);
    if (res?.status === 200) acked++;
  };
  try {
    for (let i = 0; i < 300; i++) await post(first.url, i);
    first.child.kill('SIGKILL');
    await first.stop();
    const second = await spawnRouter(file);
    try {
      for (let i = 300; i < 400; i++) await post(second.url, i);
      const bodies = () => sink.delivered().map((b) => JSON.parse(b) as { rule: string; output: string; output_fields: Record<string, unknown> });
      const held = () => bodies().filter((b) => b.rule === 'Falco router summary').reduce((n, b) => n + Number(b.output_fields['summary.count']), 0);
      const single = () => new Set(bodies().filter((b) => b.rule !== 'Falco router summary').map((b) => b.output)).size;
      // Every acknowledged alert is sent on its own or counted in a follow-up, once the windows end.
      await waitFor(() => single() + held() >= acked, 40_000, 'every acknowledged alert sent or counted');
      await delay(1000);
      assert.ok(held() > 0, 'alerts were held back across the kill');
      // At-least-once: an alert or a count repeated by the crash, never one lost.
      assert.ok(single() + held() <= acked + 1, `${single()} sent one by one + ${held()} held back, for ${acked} acknowledged`);
    } finally {
      await second.stop();
    }
  } finally {
    await sink.close();
  }
});

test('route-test shows what dedup and throttle would do with an alert, from the windows in Redis', async () => {
  const { runCli } = await import('../helpers/process.ts');
  const sink = await startHttpSink();
  const prefix = `rt-${randomUUID().slice(0, 8)}`;
  const yaml = `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "${prefix}" } }
outputs:
  - { name: siem, type: webhook, address: "${sink.url}", dedup: { window: 1h }, throttle: { window: 1h, max: 3 } }
`;
  const file = join(tempDir(), 'config.yaml');
  writeFileSync(file, yaml);
  const before = await runCli(['route-test', '-c', file, '--json'], {}, shell(1));
  const shown = (out: string) => (JSON.parse(out) as { outputs: Array<{ noise: Array<{ kind: string; counted: number; heldBack: boolean }> }> }).outputs[0].noise;
  assert.deepEqual(shown(before.stdout).map((n) => [n.kind, n.counted, n.heldBack]), [['dedup', 0, false], ['throttle', 0, false]]);
  const r = await startTestRouter(yaml);
  try {
    assert.equal((await r.post(shell(1))).status, 200);
    await waitFor(() => sink.delivered().length === 1, 10_000, 'the first alert');
  } finally {
    await r.stop();
    await sink.close();
  }
  const after = await runCli(['route-test', '-c', file], {}, shell(2));
  assert.match(after.stdout, /dedup \(1 per key per 3600 s\): 1 counted in this key's window until .*; this alert would be held back for the summary/);
});

test('route-test with the Redis driver and Redis unreachable says it could not read the windows, not that they are in the process', async () => {
  const yaml = `queue: { driver: redis, redis: { url: "redis://127.0.0.1:${await freePort()}" } }
outputs:
  - { name: siem, type: webhook, address: "http://127.0.0.1:9/hook", dedup: { window: 1h }, throttle: { window: 1h, max: 3 } }
`;
  const file = join(tempDir(), 'config.yaml');
  writeFileSync(file, yaml);
  const [human, json] = await Promise.all([runCli(['route-test', '-c', file], {}, shell(1)), runCli(['route-test', '-c', file, '--json'], {}, shell(1))]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /dedup \(1 per key per 3600 s\): Redis could not be read; route-test cannot see its windows\n/);
  assert.match(human.stdout, /throttle \(3 per key per 3600 s\): Redis could not be read; route-test cannot see its windows\n/);
  assert.doesNotMatch(human.stdout, /router's process/);
  const noise = (JSON.parse(json.stdout) as { silences: string; outputs: Array<{ noise: Array<Record<string, unknown>> }> });
  assert.equal(noise.silences, 'unreachable');
  assert.deepEqual(noise.outputs[0].noise, [
    { kind: 'dedup', window: '3600 s', max: 1, windows: 'unreachable' },
    { kind: 'throttle', window: '3600 s', max: 3, windows: 'unreachable' },
  ]);
});
