/**
 * Routing by matchers, end to end through real HTTP (issue 12): per-team Slack routing by
 * namespace with CloudWatch and the file output still receiving everything, a global exclude
 * dropping exactly the noisy controller's alerts, "Test rule" reaching every output, the filtered
 * counter adding up with deliveries, /ready, reload, check-config and route-test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { startTestRouter, tempDir, type TestRouter } from '../helpers/router.ts';
import { waitFor } from '../helpers/wait.ts';
import { runCli } from '../helpers/process.ts';
import { startRedis } from '../helpers/redis.ts';
import { startHttpSink } from '../../outputs/sdk/testkit/http-sink.ts';
import { startFakeSlack, markerOfMessage, type FakeSlack } from '../../outputs/slack/fake.ts';
import { conformance as cloudwatch } from '../../outputs/awscloudwatchlogs/conformance.ts';
import { conformance as file } from '../../outputs/file/conformance.ts';
import type { Target } from '../../outputs/sdk/testkit/conformance.ts';
import { falcoEvent, markerOf } from '../fixtures/events.ts';
import { loadConfig } from '../../src/config/load.ts';
import { outputTypes, defaultOutput } from '../../outputs/index.ts';

/** falcoEvent(n) in a namespace (and with more output fields), int64 evt.time kept exact. */
function alert(n: number, ns: string, opts: { priority?: string; rule?: string; fields?: Record<string, string> } = {}): string {
  const extra = Object.entries({ 'k8s.ns.name': ns, ...opts.fields })
    .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)},`)
    .join('');
  return falcoEvent(n, opts.priority, opts.rule).replace('"output_fields":{', `"output_fields":{${extra}`);
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const slackMarkers = (s: FakeSlack) => s.messages().map(markerOfMessage);
const FAST = '{ ratelimit: 0, initialdelay: 20ms, maxdelay: 100ms }';

interface ReadyOutput {
  name: string;
  filtered: Record<string, number>;
}
async function readyOutputs(r: TestRouter): Promise<Record<string, ReadyOutput>> {
  const body = (await (await fetch(`${r.url}/ready`)).json()) as { outputs: ReadyOutput[] };
  return Object.fromEntries(body.outputs.map((o) => [o.name, o]));
}

async function closeAll(...xs: Array<{ close(): Promise<void> } | { stop(): Promise<void> } | undefined>) {
  for (const x of xs) if (x) await ('stop' in x ? x.stop() : x.close()).catch(() => {});
}

for (const driver of ['memory', 'redis'] as const) {
  test(`per-team Slack routing by namespace; CloudWatch and the file output still receive every alert; filtered + delivered = posted (${driver} queue)`, async () => {
    const redis = driver === 'redis' ? await startRedis() : undefined;
    const teamA = await startFakeSlack();
    const teamB = await startFakeSlack();
    const cwl: Target = await cloudwatch.start();
    const archive: Target = await file.start();
    let r: TestRouter | undefined;
    try {
      const cwlSettings = Object.entries(cwl.settings).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('');
      const queue = redis ? `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "teams-${randomUUID().slice(0, 8)}" } }\n` : '';
      r = await startTestRouter(`${queue}outputs:
  - name: slack-team-a
    type: slack
    webhookurl: "${teamA.url}"
    minimumpriority: warning
    match: ['k8s.ns.name=~"team-a-.*"']
    delivery: ${FAST}
  - name: slack-team-b
    type: slack
    webhookurl: "${teamB.url}"
    minimumpriority: warning
    match: ['k8s.ns.name=~"team-b-.*"']
    exclude:
      - matchers: ['rule="Terminal shell in container"', 'user.name="ci-bot"']
        comment: CI opens shells to run its checks
    delivery: ${FAST}
  - name: cloudwatch
    type: awscloudwatchlogs
${cwlSettings}    delivery: ${FAST}
  - { name: archive, type: file, path: "${archive.settings.path}" }
`);
      // [marker, namespace, priority, rule, user]
      const posted: Array<[number, string, string, string?, string?]> = [
        [1, 'team-a-payments', 'Warning'],
        [2, 'team-a-web', 'Critical'],
        [3, 'team-a-web', 'Notice'], // below team A's minimum
        [4, 'team-b-api', 'Error'],
        [5, 'team-b-api', 'Warning', 'Terminal shell in container', 'ci-bot'], // team B's own exclude
        [6, 'team-b-api', 'Warning', 'Terminal shell in container', 'alice'],
        [7, 'kube-system', 'Critical'], // no team
        [8, 'team-ab', 'Warning'], // anchored: neither team-a-.* nor team-b-.*
      ];
      for (const [n, ns, priority, rule, user] of posted) {
        const res = await r.post(alert(n, ns, { priority, rule, fields: user ? { 'user.name': user } : {} }));
        assert.equal(res.status, 200, res.body);
      }
      const all = posted.map(([n]) => n);
      await waitFor(() => slackMarkers(teamA).length >= 2 && slackMarkers(teamB).length >= 2 && cwl.delivered().length >= 8 && archive.delivered().length >= 8, 15_000, 'every delivery');
      assert.deepEqual(sorted(slackMarkers(teamA)), [1, 2]);
      assert.deepEqual(sorted(slackMarkers(teamB)), [4, 6]);
      assert.deepEqual(sorted(cwl.delivered()), all);
      assert.deepEqual(sorted(archive.delivered()), all);

      // Every instance accounts for every alert: delivered + filtered = posted, with the reasons.
      const filtered = (output: string, reason?: string): Promise<number> => r!.metric('falco_router_events_filtered_total', reason ? { output, reason } : { output });
      const want: Record<string, { delivered: number; priority: number; match: number; exclude: number }> = {
        'slack-team-a': { delivered: 2, priority: 1, match: 5, exclude: 0 },
        'slack-team-b': { delivered: 2, priority: 1, match: 4, exclude: 1 },
        cloudwatch: { delivered: 8, priority: 0, match: 0, exclude: 0 },
        archive: { delivered: 8, priority: 0, match: 0, exclude: 0 },
      };
      await waitFor(async () => (await r!.metric('falco_router_events_delivered_total')) === 20, 10_000, 'the delivered counters');
      const ready = await readyOutputs(r);
      for (const [output, w] of Object.entries(want)) {
        const got: (typeof want)[string] = {
          delivered: await r.metric('falco_router_events_delivered_total', { output }),
          priority: await filtered(output, 'priority'),
          match: await filtered(output, 'match'),
          exclude: await filtered(output, 'exclude'),
        };
        assert.deepEqual(got, w, output);
        assert.equal(got.delivered + (await filtered(output)), posted.length, `${output}: delivered + filtered = posted`);
        assert.deepEqual(ready[output].filtered, { priority: w.priority, match: w.match, exclude: w.exclude, silence: 0, dedup: 0, throttle: 0 }, `${output} in /ready`);
      }
      // Bounded labels: no namespace, rule or field value ever becomes one.
      const metrics = await (await fetch(`${r.url}/metrics`)).text();
      const series = metrics.split('\n').filter((l) => l.startsWith('falco_router_events_filtered_total'));
      assert.equal(series.length, 4 * 6, series.join('\n'));
      for (const s of series) assert.match(s, /^falco_router_events_filtered_total\{output="[a-z-]+",reason="(priority|match|exclude|silence|dedup|throttle)"\} \d+$/);
    } finally {
      await closeAll(r, teamA, teamB, cwl, archive);
      await redis?.stop(true);
    }
  });
}

for (const driver of ['memory', 'redis'] as const) {
  test(`a global exclude entry drops exactly the noisy controller's alerts, everywhere, and nothing else (${driver} queue)`, async () => {
    const redis = driver === 'redis' ? await startRedis() : undefined;
    const archive = await file.start();
    const hook = await startHttpSink();
    let r: TestRouter | undefined;
    try {
      const queue = redis ? `queue: { driver: redis, redis: { url: "${redis.url}", prefix: "routing-${randomUUID().slice(0, 8)}" } }\n` : '';
      r = await startTestRouter(`${queue}exclude:
  - matchers: ['k8s.ns.name=~"external-(dns|secrets)"', 'rule="Contact K8S API Server From Container"']
    comment: controllers that talk to the API server by design
outputs:
  - { name: archive, type: file, path: "${archive.settings.path}" }
  - { name: soc, type: webhook, address: "${hook.url}" }
`);
      const API = 'Contact K8S API Server From Container';
      const cases: Array<[number, string, string, boolean]> = [
        [1, 'external-dns', API, true],
        [2, 'external-secrets', API, true],
        [3, 'external-dns', 'Terminal shell in container', false], // another rule in that namespace
        [4, 'payments', API, false], // the same rule elsewhere
        [5, 'external-dns-old', API, false], // anchored: not external-(dns|secrets)
        [6, 'my-external-secrets', API, false],
        [7, 'external-secrets', API, true],
      ];
      for (const [n, ns, rule] of cases) assert.equal((await r.post(alert(n, ns, { rule }))).status, 200);
      const kept = cases.filter(([, , , dropped]) => !dropped).map(([n]) => n);
      await waitFor(() => archive.delivered().length >= kept.length && hook.delivered().length >= kept.length, 10_000, 'the kept alerts');
      // A last alert behind them: once it is delivered, nothing dropped is still on its way.
      assert.equal((await r.post(alert(99, 'payments'))).status, 200);
      await waitFor(() => archive.delivered().includes(99) && hook.delivered().map(markerOf).includes(99), 10_000, 'the last alert');
      assert.deepEqual(sorted(archive.delivered()), [...kept, 99]);
      assert.deepEqual(sorted(hook.delivered().map(markerOf)), [...kept, 99]);
      for (const output of ['archive', 'soc']) {
        assert.equal(await r.metric('falco_router_events_filtered_total', { output, reason: 'exclude' }), 3, output);
        assert.equal(await r.metric('falco_router_events_filtered_total', { output }), 3, output);
      }
    } finally {
      await closeAll(r, archive, hook);
      await redis?.stop();
    }
  });
}

// Through ingest a 100 KB field is cut to 507 bytes plus "[...]" (falcosidekick's truncation), which
// is still far beyond what these regexes need to hang a backtracking engine; the matcher itself is
// run on the full 100 KB in test/unit/matcher.test.ts. The timeout is a safety net, not a speed check.
test('regexes built to explode a backtracking engine, against a 100 KB proc.cmdline posted to the router, answer and route right', { timeout: 60_000 }, async () => {
  const sink = await startHttpSink();
  let r: TestRouter | undefined;
  try {
    const base = sink.url.replace(/\/hook$/, '');
    r = await startTestRouter(`outputs:
  - { name: never, type: webhook, address: "${base}/never", match: ['proc.cmdline=~"(a+)+b"'] }
  - { name: cut, type: webhook, address: "${base}/cut", exclude: [{ matchers: ['proc.cmdline=~"(a|aa)+\\\\[\\\\.\\\\.\\\\.\\\\]"'] }] }
  - { name: kept, type: webhook, address: "${base}/kept", match: ['proc.cmdline!~"(a*)*b"'] }
`);
    const big = alert(1, 'dev', { fields: { 'proc.cmdline': 'a'.repeat(100_000) } });
    assert.equal((await r.post(big)).status, 200);
    await waitFor(() => sink.requests.some((q) => q.url === '/kept' && q.status === 200), 10_000, 'the delivery to kept');
    assert.equal(await r.metric('falco_router_events_filtered_total', { output: 'never', reason: 'match' }), 1);
    assert.equal(await r.metric('falco_router_events_filtered_total', { output: 'cut', reason: 'exclude' }), 1);
    const delivered = JSON.parse(sink.requests.find((q) => q.url === '/kept')!.body) as { output_fields: Record<string, string> };
    assert.equal(delivered.output_fields['proc.cmdline'], `${'a'.repeat(507)}[...]`);
  } finally {
    await closeAll(r, sink);
  }
});

test('"Test rule" (POST /test) reaches every output, whatever its minimum priority, match and exclude', async () => {
  const a = await startHttpSink();
  const b = await startHttpSink();
  const c = await startHttpSink();
  let r: TestRouter | undefined;
  try {
    r = await startTestRouter(`exclude: [{ matchers: ['rule=~".*"'], comment: everything }]
outputs:
  - { name: a, type: webhook, address: "${a.url}", minimumpriority: emergency }
  - { name: b, type: webhook, address: "${b.url}", match: ['k8s.ns.name="nowhere"', 'tags="never"'] }
  - { name: c, type: webhook, address: "${c.url}", exclude: [{ matchers: ['source="internal"'] }] }
`);
    assert.equal((await r.post('', { path: '/test' })).status, 200);
    await waitFor(() => [a, b, c].every((s) => s.delivered().length === 1), 10_000, 'the test alert at every output');
    for (const s of [a, b, c]) assert.match(s.delivered()[0], /"rule":"Test rule"/);
    // An ordinary alert is excluded everywhere by the same config.
    assert.equal((await r.post(alert(1, 'nowhere', { priority: 'Emergency' }))).status, 200);
    for (const output of ['a', 'b', 'c']) assert.equal(await r.metric('falco_router_events_filtered_total', { output, reason: 'exclude' }), 1, output);
    assert.equal(await r.metric('falco_router_events_filtered_total'), 3);
  } finally {
    await closeAll(r, a, b, c);
  }
});

test('an alert answered 503 is not counted as filtered: it was not stored', async () => {
  // `down` fails and waits a long backoff, so its memory queue (maxevents 2) stays full.
  const down = await startHttpSink([{ status: 503 }]);
  let r: TestRouter | undefined;
  try {
    r = await startTestRouter(`queue: { driver: memory, maxevents: 2 }
outputs:
  - { name: down, type: webhook, address: "${down.url}", delivery: { attempts: 1000, initialdelay: 60s, maxdelay: 60s } }
  - { name: picky, type: webhook, address: "${down.url}", match: ['rule="never"'] }
`);
    const statuses: number[] = [];
    for (let i = 1; i <= 5; i++) statuses.push((await r.post(alert(i, 'x'))).status);
    assert.deepEqual(statuses, [200, 200, 503, 503, 503]);
    assert.equal(await r.metric('falco_router_events_filtered_total', { output: 'picky', reason: 'match' }), 2);
    assert.deepEqual((await readyOutputs(r)).picky.filtered, { priority: 0, match: 2, exclude: 0, silence: 0, dedup: 0, throttle: 0 });
  } finally {
    await closeAll(r, down);
  }
});

test('reload changes matchers without restarting the output or losing alerts in flight', async () => {
  // Slow answers keep sends in flight while the reload runs.
  const teamSink = await startHttpSink([{ status: 200, delayMs: 400 }]);
  const restSink = await startHttpSink([{ status: 200, delayMs: 400 }]);
  let r: TestRouter | undefined;
  const yaml = (ns: string) => `outputs:
  - { name: team, type: webhook, address: "${teamSink.url}", match: ['k8s.ns.name="${ns}"'], delivery: { concurrency: 4 } }
  - { name: rest, type: webhook, address: "${restSink.url}", exclude: [{ matchers: ['k8s.ns.name="${ns}"'] }], delivery: { concurrency: 4 } }
`;
  const post = async (n: number) => assert.equal((await r!.post(alert(n, n % 2 ? 'team-a' : 'team-b'))).status, 200);
  try {
    r = await startTestRouter(yaml('team-a'));
    const workers = [...r.workers];
    for (let i = 1; i <= 4; i++) await post(i);
    await waitFor(() => teamSink.requests.length === 2 && restSink.requests.length === 2, 10_000, 'sends in flight');
    assert.equal(teamSink.delivered().length + restSink.delivered().length, 0, 'still in flight when the reload starts');

    const next = join(tempDir(), 'next.yaml');
    writeFileSync(next, yaml('team-b'));
    const cfg = loadConfig({ file: next, env: { LISTENADDRESS: '127.0.0.1', LISTENPORT: new URL(r.url).port, SHUTDOWN_GRACEPERIOD: '1s' }, types: outputTypes, defaultOutput });
    const result = await r.reload(cfg);
    assert.deepEqual([result.added, result.removed, result.changed], [[], [], []], 'routing settings do not restart an output');
    assert.deepEqual([...r.workers], workers, 'the same workers carry on');

    for (let i = 5; i <= 8; i++) await post(i);
    await waitFor(() => teamSink.delivered().length === 4 && restSink.delivered().length === 4, 10_000, 'every routed alert delivered');
    // Before the reload team took team-a (odd markers); after it, team-b (even ones). Each alert once.
    assert.deepEqual(sorted(teamSink.delivered().map(markerOf)), [1, 3, 6, 8]);
    assert.deepEqual(sorted(restSink.delivered().map(markerOf)), [2, 4, 5, 7]);
    assert.equal(teamSink.requests.length + restSink.requests.length, 8, 'nothing sent twice');
    assert.equal(await r.metric('falco_router_events_filtered_total', { output: 'team', reason: 'match' }), 4);
    assert.equal(await r.metric('falco_router_events_filtered_total', { output: 'rest', reason: 'exclude' }), 4);
  } finally {
    await closeAll(r, teamSink, restSink);
  }
});

test('check-config shows the global exclude and each instance\'s match and exclude as matcher strings; a bad matcher exits 1 with its key path and column', async () => {
  const dir = tempDir();
  const good = join(dir, 'good.yaml');
  writeFileSync(
    good,
    `exclude:
  - matchers: ['k8s.ns.name =~ "external-(dns|secrets)"', 'rule="Contact K8S API Server From Container"']
    comment: controllers that talk to the API server by design
outputs:
  - name: slack-team-a
    type: slack
    webhookurl: "https://hooks.slack.com/services/T1/B2/slacksecret456"
    match: ['"k8s.ns.name"=~"team-a-.*"']
    exclude: [{ matchers: ['rule="Terminal shell in container"', 'user.name="ci-bot"'] }]
`,
  );
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, `outputs:\n  - { name: a, type: file, path: /tmp/a }\n  - { name: b, type: file, path: /tmp/b }\n  - { name: c, type: file, path: /tmp/c, match: ['k8s.ns.name=="x"'] }\n`);
  const [ok, ko] = await Promise.all([runCli(['check-config', '-c', good]), runCli(['check-config', '-c', bad])]);
  assert.equal(ok.code, 0, ok.stderr);
  const shown = JSON.parse(ok.stdout) as { exclude: unknown; outputs: Array<{ name: string; match: string[]; exclude: unknown }> };
  assert.deepEqual(shown.exclude, [
    { matchers: ['k8s.ns.name=~"external-(dns|secrets)"', 'rule="Contact K8S API Server From Container"'], comment: 'controllers that talk to the API server by design' },
  ]);
  assert.deepEqual(shown.outputs[0].match, ['k8s.ns.name=~"team-a-.*"']);
  assert.deepEqual(shown.outputs[0].exclude, [{ matchers: ['rule="Terminal shell in container"', 'user.name="ci-bot"'] }]);
  assert.ok(!ok.stdout.includes('slacksecret456'));
  assert.equal(ko.code, 1);
  assert.match(ko.stderr, /outputs\[2\]\.match\[0\]: unexpected '=' at column 13: expected a value in double quotes/);
});

test('route-test reads one alert from stdin and says, for each output, whether it is sent and why not', async () => {
  const dir = tempDir();
  const cfgFile = join(dir, 'routes.yaml');
  writeFileSync(
    cfgFile,
    `exclude:
  - matchers: ['k8s.ns.name=~"external-(dns|secrets)"', 'rule="Contact K8S API Server From Container"']
    comment: controllers that talk to the API server by design
outputs:
  - name: slack-team-a
    type: slack
    webhookurl: "https://hooks.slack.com/services/T1/B2/slacksecret456"
    minimumpriority: warning
    match: ['k8s.ns.name=~"team-a-.*"']
    exclude:
      - matchers: ['rule="Terminal shell in container"', 'user.name="ci-bot"']
        comment: CI opens shells
  - name: slack-team-b
    type: slack
    webhookurl: "https://hooks.slack.com/services/T1/B2/other789"
    match: ['k8s.ns.name=~"team-b-.*"', 'tags="network"']
  - { name: audit, type: file, path: ${join(dir, 'audit.ndjson')}, minimumpriority: critical }
  - { name: archive, type: file, path: ${join(dir, 'archive.ndjson')} }
`,
  );
  const shell = alert(1, 'team-a-web', { rule: 'Terminal shell in container', fields: { 'user.name': 'ci-bot' } });
  const teamA = alert(2, 'team-a-web');
  const noisy = alert(3, 'external-dns', { rule: 'Contact K8S API Server From Container' });
  const [human, json, noisyJson, test, bad, plain, badConfig] = await Promise.all([
    runCli(['route-test', '-c', cfgFile], {}, shell),
    runCli(['route-test', '-c', cfgFile, '--json'], {}, teamA),
    runCli(['route-test', '-c', cfgFile, '--json'], {}, noisy),
    runCli(['route-test', '-c', cfgFile], {}, alert(4, 'nowhere', { rule: 'Test rule', priority: 'Debug' })),
    runCli(['route-test', '-c', cfgFile], {}, '{"rule":"x","priority":"urgent","time":"2025-01-01T00:00:00Z","output_fields":{"a":1}}'),
    runCli(['route-test', '-c', cfgFile], {}, '16:31:56.746609046: Error File below a known binary directory opened for writing'),
    runCli(['route-test', '-c', join(dir, 'nope.yaml')], {}, teamA),
  ]);

  assert.equal(human.code, 0, human.stderr);
  const line = (name: string) => human.stdout.split('\n').find((l) => l.startsWith(`${name} (`)) ?? '';
  assert.match(human.stdout, /^alert: rule "Terminal shell in container", priority Warning, source "syscall", hostname "node-1"\nglobal exclude: no entry matches\n/);
  assert.match(line('slack-team-a'), /not sent: outputs\[0\]\.exclude\[0\] \(CI opens shells\) matches: rule="Terminal shell in container", user\.name="ci-bot"$/);
  assert.match(line('slack-team-b'), /not sent: match\[0\] k8s\.ns\.name=~"team-b-\.\*" does not hold \(k8s\.ns\.name is "team-a-web"\)$/);
  assert.match(line('audit'), /not sent: priority Warning is below its minimumpriority Critical$/);
  assert.match(line('archive'), /sent$/);
  assert.match(human.stdout, /\nsent to 1 of 4 outputs\n$/);
  assert.ok(!human.stdout.includes('slacksecret456'));

  assert.equal(json.code, 0, json.stderr);
  const j = JSON.parse(json.stdout) as { alert: Record<string, string>; test: boolean; globalExclude: unknown; outputs: Array<Record<string, unknown>> };
  assert.deepEqual(j.alert, { rule: 'Read sensitive file untrusted', priority: 'Warning', source: 'syscall', hostname: 'node-1' });
  assert.equal(j.globalExclude, null);
  assert.deepEqual(j.outputs, [
    { name: 'slack-team-a', type: 'slack', sent: true },
    { name: 'slack-team-b', type: 'slack', sent: false, reason: 'match', matcher: 'k8s.ns.name=~"team-b-.*"', index: 0, field: 'k8s.ns.name', value: 'team-a-web' },
    { name: 'audit', type: 'file', sent: false, reason: 'priority', minimumpriority: 'Critical' },
    { name: 'archive', type: 'file', sent: true },
  ]);

  assert.equal(noisyJson.code, 0, noisyJson.stderr);
  const n = JSON.parse(noisyJson.stdout) as { globalExclude: { key: string; comment: string; matchers: string[] }; outputs: Array<{ sent: boolean; reason?: string; exclude?: { key: string } }> };
  assert.deepEqual(n.globalExclude, {
    scope: 'global',
    key: 'exclude[0]',
    index: 0,
    comment: 'controllers that talk to the API server by design',
    matchers: ['k8s.ns.name=~"external-(dns|secrets)"', 'rule="Contact K8S API Server From Container"'],
  });
  // Priority comes first: audit (critical) counts it as priority, the others as the global exclude.
  assert.deepEqual(
    n.outputs.map((o) => [o.sent, o.reason, o.exclude?.key]),
    [
      [false, 'exclude', 'exclude[0]'],
      [false, 'exclude', 'exclude[0]'],
      [false, 'priority', undefined],
      [false, 'exclude', 'exclude[0]'],
    ],
  );

  assert.equal(test.code, 0, test.stderr);
  assert.match(test.stdout, /"Test rule" reaches every output/);
  assert.match(test.stdout, /\nsent to 4 of 4 outputs\n$/);

  // A bad alert: the words of ingest's 400, exit code 1, nothing on stdout.
  assert.deepEqual([bad.code, bad.stdout, bad.stderr], [1, '', 'Please send a valid request body: "priority": "urgent" is not a Falco priority\n']);
  const r = await startTestRouter(`outputs: [{ name: archive, type: file, path: "${join(dir, 'ingest.ndjson')}" }]\n`);
  try {
    assert.deepEqual(await r.post('{"rule":"x","priority":"urgent","time":"2025-01-01T00:00:00Z","output_fields":{"a":1}}'), { status: 400, body: bad.stderr });
  } finally {
    await r.stop();
  }
  assert.equal(plain.code, 1);
  assert.match(plain.stderr, /^Please send a valid request body: the body is a plain-text Falco alert, not JSON/);
  assert.equal(badConfig.code, 1);
  assert.match(badConfig.stderr, /cannot read config file .*nope\.yaml/);
});
